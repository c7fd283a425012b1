"""Cosine similarity over the last axis, as torch.nn.functional.cosine_similarity clamps it:
sum_j a_j / max(||a||, eps) * b_j / max(||b||, eps)."""

import sympy as sp

from derive.model import Input, OperatorModel, Param, index, size
from derive.registry import register


@register
def cosine_similarity() -> OperatorModel:
    n = size("n")
    j = index("j", n)
    a, b = Input("a", (n,)), Input("b", (n,))
    eps = sp.Symbol("epsilon", positive=True)
    norm_a = sp.Max(sp.sqrt(sp.Sum(a[j] ** 2, (j, 0, n - 1))), eps)
    norm_b = sp.Max(sp.sqrt(sp.Sum(b[j] ** 2, (j, 0, n - 1))), eps)
    return OperatorModel(
        name="cosine_similarity",
        summary="a . b / (max(||a||, eps) max(||b||, eps)) over the last axis",
        category="similarity",
        inputs=(a, b),
        params=(Param("eps", 1e-8, eps, "lower bound of each norm"),),
        output_indices=(),
        output=sp.Sum(a[j] * b[j], (j, 0, n - 1)) / (norm_a * norm_b),
        torch="torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=eps)",
    )
