"""Scaled dot-product attention: softmax_j(q_i . k_j / sqrt(E)) v_j, optionally causal (j <= i)."""

import sympy as sp

from ..model import Input, OperatorModel, Param, index, size
from ..model.functions import at_most
from ..model.registry import register


@register
def scaled_dot_product_attention(causal: bool = False) -> OperatorModel:
    L, S, E, V = size("L"), size("S"), size("E"), size("V")
    i, j, l, d, e = index("i", L), index("j", S), index("l", S), index("d", E), index("e", V)
    q, k, v = Input("q", (L, E)), Input("k", (S, E)), Input("v", (S, V))

    def weight(col: sp.Idx) -> sp.Expr:
        score = sp.Sum(q[i, d] * k[col, d], (d, 0, E - 1)) / sp.sqrt(E)
        mask = at_most(col, i) if causal else 1
        return mask * sp.exp(score)

    total = sp.Sum(weight(l), (l, 0, S - 1))
    return OperatorModel(
        name="scaled_dot_product_attention",
        cite=("vaswani2017attention",),
        summary="softmax(q k^T / sqrt(E)) v over the last two axes (causal: key j attends only for j <= i)",
        category="attention",
        inputs=(q, k, v),
        params=(Param("causal", False, None, "mask keys after the query position (j > i)",
                      choices=(False, True)),),
        output_indices=(i, e),
        output=sp.Sum(weight(j) * v[j, e], (j, 0, S - 1)) / total,
        where=(("Z", total),),
        torch="torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)",
        notes=("No dropout; scale 1/sqrt(E).",),
    )
