"""max(a, b, c, 1/10) elementwise: several inputs and a bound in one Max."""

import sympy as sp

from derive.model import Input, OperatorModel, index, size
from derive.registry import register


@register
def max_of_three() -> OperatorModel:
    n = size("n")
    i = index("i", n)
    a, b, c = Input("a", (n,)), Input("b", (n,)), Input("c", (n,))
    return OperatorModel(
        name="max_of_three",
        summary="max(a, b, c, 1/10)",
        category="elementwise",
        inputs=(a, b, c),
        output_indices=(i,),
        output=sp.Max(a[i], b[i], c[i], sp.Rational(1, 10)),
        torch="torch.clamp_min(torch.amax(torch.stack([a, b, c]), dim=0), 0.1)",
    )
