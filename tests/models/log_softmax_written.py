"""log-softmax written as it reads, x_i - log(sum_j exp(x_j)), with no declared shift invariance."""

import sympy as sp

from derive.model import Input, OperatorModel, index, size
from derive.registry import register


@register
def log_softmax_written() -> OperatorModel:
    n = size("n")
    i, j = index("i", n), index("j", n)
    x = Input("x", (n,))
    return OperatorModel(
        name="log_softmax_written",
        summary="x_i - log(sum_j exp(x_j)) over the last axis",
        category="normalization",
        inputs=(x,),
        output_indices=(i,),
        output=x[i] - sp.log(sp.Sum(sp.exp(x[j]), (j, 0, n - 1))),
        torch="torch.log_softmax(x, dim=-1)",
    )
