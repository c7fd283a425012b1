"""LayerNorm over the last axis with the biased variance: (x_i - mu) / sqrt(var + eps) * gamma_i + beta_i."""

import sympy as sp

from ..model import Input, OperatorModel, Param, index, size
from ..model.registry import register


@register
def layernorm() -> OperatorModel:
    n = size("n")
    i, j, l = index("i", n), index("j", n), index("l", n)
    x = Input("x", (n,))
    gamma = Input("gamma", (n,), optional=True, default=1)
    beta = Input("beta", (n,), optional=True, default=0)
    eps = sp.Symbol("epsilon", positive=True)
    mean = sp.Sum(x[l], (l, 0, n - 1)) / n
    variance = sp.Sum((x[j] - mean) ** 2, (j, 0, n - 1)) / n  # two-pass: centred before squaring
    return OperatorModel(
        name="layernorm",
        cite=("ba2016layer",),
        summary="(x - mean(x)) / sqrt(var(x) + eps) * gamma + beta over the last axis, biased variance",
        category="normalization",
        inputs=(x, gamma, beta),
        params=(Param("eps", 1e-5, eps, "added to the variance inside the root"),),
        output_indices=(i,),
        output=(x[i] - mean) / sp.sqrt(variance + eps) * gamma[i] + beta[i],
        where=(("mu", mean), ("sigma", sp.sqrt(variance + eps))),
        torch="torch.nn.functional.layer_norm(x, (n,), gamma, beta, eps)",
    )
