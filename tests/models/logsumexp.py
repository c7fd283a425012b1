"""logsumexp over the last axis, written as it reads: log(sum_j exp(x_j))."""

import sympy as sp

from derive.model import Input, OperatorModel, index, size
from derive.registry import register


@register
def logsumexp() -> OperatorModel:
    n = size("n")
    j = index("j", n)
    x = Input("x", (n,))
    return OperatorModel(
        name="logsumexp",
        summary="log(sum_j exp(x_j)) over the last axis",
        category="reduction",
        inputs=(x,),
        output_indices=(),
        output=sp.log(sp.Sum(sp.exp(x[j]), (j, 0, n - 1))),
        torch="torch.logsumexp(x, dim=-1)",
    )
