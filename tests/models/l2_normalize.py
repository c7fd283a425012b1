"""L2 normalisation over the last axis, clamped like torch.nn.functional.normalize: x / max(||x||, eps)."""

import sympy as sp

from derive.model import Input, OperatorModel, Param, index, size
from derive.registry import register


@register
def l2_normalize() -> OperatorModel:
    n = size("n")
    i, j = index("i", n), index("j", n)
    x = Input("x", (n,))
    eps = sp.Symbol("epsilon", positive=True)
    norm = sp.sqrt(sp.Sum(x[j] ** 2, (j, 0, n - 1)))
    return OperatorModel(
        name="l2_normalize",
        summary="x / max(||x||, eps) over the last axis",
        category="normalization",
        inputs=(x,),
        params=(Param("eps", 1e-12, eps, "lower bound of the norm"),),
        output_indices=(i,),
        output=x[i] / sp.Max(norm, eps),
        torch="torch.nn.functional.normalize(x, dim=-1, eps=eps)",
    )
