"""Elementwise |a - b| * sign(a): Abs and sign, with PyTorch's kinks."""

import sympy as sp

from derive.model import Input, OperatorModel, index, size
from derive.registry import register


@register
def abs_sign() -> OperatorModel:
    n = size("n")
    i = index("i", n)
    a, b = Input("a", (n,)), Input("b", (n,))
    return OperatorModel(
        name="abs_sign",
        summary="|a - b| + sign(a) * b",
        category="elementwise",
        inputs=(a, b),
        output_indices=(i,),
        output=sp.Abs(a[i] - b[i]) + sp.sign(a[i]) * b[i],
        torch="torch.abs(a - b) + torch.sign(a) * b",
    )
