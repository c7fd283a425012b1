"""Softmax along one axis: y_i = exp(x_i) / sum_j exp(x_j)."""

import sympy as sp

from ..model import Input, Layout, OperatorModel, Param, index, size
from ..model.registry import register


@register
def softmax() -> OperatorModel:
    n = size("n")
    i, j = index("i", n), index("j", n)
    x = Input("x", (n,))
    total = sp.Sum(sp.exp(x[j]), (j, 0, n - 1))
    return OperatorModel(
        name="softmax",
        cite=("bridle1990probabilistic",),
        summary="exp(x) / sum(exp(x)) along axis",
        category="normalization",
        inputs=(x,),
        params=(Param("axis", -1, None, "the axis the softmax runs along"),),
        layout=Layout("axis", "axis"),
        output_indices=(i,),
        output=sp.exp(x[i]) / total,
        where=(("S", total),),
        shift_invariant=(("x", n),),
        torch="torch.softmax(x, dim=axis)",
    )
