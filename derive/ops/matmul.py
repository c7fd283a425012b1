"""Matrix product with leading batch dimensions: y_ij = sum_k a_ik b_kj."""

import sympy as sp

from ..model import Input, OperatorModel, index, size
from ..model.registry import register


@register
def matmul() -> OperatorModel:
    m, n, r = size("M"), size("N"), size("K")
    i, j, k = index("i", m), index("j", n), index("k", r)
    a, b = Input("a", (m, r)), Input("b", (r, n))
    return OperatorModel(
        name="matmul",
        summary="a @ b over the last two axes, batch dims broadcast",
        category="linear algebra",
        inputs=(a, b),
        output_indices=(i, j),
        output=sp.Sum(a[i, k] * b[k, j], (k, 0, r - 1)),
        torch="torch.matmul(a, b)",
    )
