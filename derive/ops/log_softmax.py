"""Log-softmax along one axis: y_i = x_i - log sum_j exp(x_j)."""

import sympy as sp

from ..model import Input, Layout, OperatorModel, Param, index, size
from ..model.registry import register


@register
def log_softmax() -> OperatorModel:
    n = size("n")
    i, j = index("i", n), index("j", n)
    x = Input("x", (n,))
    total = sp.Sum(sp.exp(x[j]), (j, 0, n - 1))
    return OperatorModel(
        name="log_softmax",
        cite=("bridle1990probabilistic",),
        summary="x - log(sum(exp(x))) along axis",
        category="normalization",
        inputs=(x,),
        params=(Param("axis", -1, None, "the axis the log-softmax runs along"),),
        layout=Layout("axis", "axis"),
        output_indices=(i,),
        output=x[i] - sp.log(total),
        where=(("S", total),),
        shift_invariant=(("x", n),),
        torch="torch.log_softmax(x, dim=axis)",
    )
