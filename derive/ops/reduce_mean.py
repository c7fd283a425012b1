"""Mean along one axis: y = sum_j x_j / n."""

import sympy as sp

from ..model import Input, Layout, OperatorModel, Param, index, size
from ..model.registry import register


@register
def reduce_mean() -> OperatorModel:
    n = size("n")
    j = index("j", n)
    x = Input("x", (n,))
    return OperatorModel(
        name="reduce_mean",
        summary="mean of x along axis",
        category="reduction",
        inputs=(x,),
        params=(Param("axis", -1, None, "the axis averaged over"),
                Param("keepdims", False, None, "keep the averaged axis with length 1")),
        layout=Layout("axis", "axis", "keepdims"),
        output_indices=(),
        output=sp.Sum(x[j], (j, 0, n - 1)) / n,
        torch="torch.mean(x, dim=axis, keepdim=keepdims)",
    )
