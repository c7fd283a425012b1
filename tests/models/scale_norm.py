"""ScaleNorm (Nguyen and Salazar 2019): y = g * x / max(||x||, eps) over the last axis, g one
learnable scalar declared as an axis of length 1 (an nn.Parameter of shape (1,)), read as g[0]."""

import sympy as sp

from derive.model import Input, OperatorModel, Param, index, size
from derive.registry import register


@register
def scale_norm() -> OperatorModel:
    n = size("n")
    i, j = index("i", n), index("j", n)
    x, g = Input("x", (n,)), Input("g", (sp.Integer(1),))
    eps = sp.Symbol("epsilon", positive=True)
    norm = sp.Max(sp.sqrt(sp.Sum(x[j] ** 2, (j, 0, n - 1))), eps)
    return OperatorModel(
        name="scale_norm",
        summary="g * x / max(||x||, eps) over the last axis, g a learnable scalar of shape (1,)",
        category="normalization",
        inputs=(x, g),
        params=(Param("eps", 1e-5, eps, "lower bound of the norm"),),
        output_indices=(i,),
        output=g[0] * x[i] / norm,
    )
