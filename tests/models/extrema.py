"""Max of two inputs and Min against a bound, elementwise: torch.maximum(a, b) + torch.clamp_max(a, 0.5)."""

import sympy as sp

from derive.model import Input, OperatorModel, index, size
from derive.registry import register


@register
def extrema() -> OperatorModel:
    n = size("n")
    i = index("i", n)
    a, b = Input("a", (n,)), Input("b", (n,))
    return OperatorModel(
        name="extrema",
        summary="max(a, b) + min(a, 1/2)",
        category="elementwise",
        inputs=(a, b),
        output_indices=(i,),
        output=sp.Max(a[i], b[i]) + sp.Min(a[i], sp.Rational(1, 2)),
        torch="torch.maximum(a, b) + torch.clamp_max(a, 0.5)",
    )
