"""x minus its maximum over the last axis, scaled by that maximum: max_over inside a model."""

import sympy as sp

from derive.functions import max_over
from derive.model import Input, OperatorModel, index, size
from derive.registry import register


@register
def max_shift() -> OperatorModel:
    n = size("n")
    i, j = index("i", n), index("j", n)
    x = Input("x", (n,))
    top = max_over(x[j], j)
    return OperatorModel(
        name="max_shift",
        summary="(x - max_j x_j) * max_j x_j over the last axis",
        category="reduction",
        inputs=(x,),
        output_indices=(i,),
        output=(x[i] - top) * top,
        torch="(x - torch.amax(x, dim=-1, keepdim=True)) * torch.amax(x, dim=-1, keepdim=True)",
    )
