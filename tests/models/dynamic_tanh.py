"""Dynamic Tanh (Zhu et al. 2025), a normalisation-free layer: y = gamma * tanh(alpha * x) + beta,
alpha one learnable scalar (an input with no axes), gamma and beta per channel."""

import sympy as sp

from derive.model import Input, OperatorModel, index, size
from derive.registry import register


@register
def dynamic_tanh() -> OperatorModel:
    n = size("n")
    i = index("i", n)
    x, alpha, gamma, beta = Input("x", (n,)), Input("alpha", ()), Input("gamma", (n,)), Input("beta", (n,))
    return OperatorModel(
        name="dynamic_tanh",
        summary="gamma * tanh(alpha * x) + beta over the last axis, alpha a learnable scalar",
        category="normalization",
        inputs=(x, alpha, gamma, beta),
        output_indices=(i,),
        output=gamma[i] * sp.tanh(alpha[()] * x[i]) + beta[i],
    )
