"""L2 normalisation with the clamp written as a Piecewise on the row's norm."""

import sympy as sp

from derive.model import Input, OperatorModel, Param, index, size
from derive.registry import register


@register
def l2_piecewise() -> OperatorModel:
    n = size("n")
    i, j = index("i", n), index("j", n)
    x = Input("x", (n,))
    eps = sp.Symbol("epsilon", positive=True)
    norm = sp.sqrt(sp.Sum(x[j] ** 2, (j, 0, n - 1)))
    return OperatorModel(
        name="l2_piecewise",
        summary="x / ||x|| where ||x|| > eps, else x / eps",
        category="normalization",
        inputs=(x,),
        params=(Param("eps", 1e-12, eps, "lower bound of the norm"),),
        output_indices=(i,),
        output=sp.Piecewise((x[i] / norm, norm > eps), (x[i] / eps, True)),
        torch="torch.nn.functional.normalize(x, dim=-1, eps=eps)",
    )
