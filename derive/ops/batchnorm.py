"""Batch normalisation in training mode: statistics per channel over the batch and spatial axes."""

import sympy as sp

from ..model import Input, Layout, OperatorModel, Param, index, size
from ..model.registry import register


@register
def batchnorm() -> OperatorModel:
    N, C, S = size("N"), size("C"), size("S")
    b, c, s = index("b", N), index("c", C), index("s", S)
    j, t = index("j", N), index("t", S)
    x = Input("x", (N, C, S))
    gamma = Input("gamma", (C,), optional=True, default=1)
    beta = Input("beta", (C,), optional=True, default=0)
    eps = sp.Symbol("epsilon", positive=True)
    count = N * S
    mean = sp.Sum(x[j, c, t], (j, 0, N - 1), (t, 0, S - 1)) / count
    variance = sp.Sum((x[j, c, t] - mean) ** 2, (j, 0, N - 1), (t, 0, S - 1)) / count
    return OperatorModel(
        name="batchnorm",
        cite=("ioffe2015batch",),
        summary="(x - mean) / sqrt(var + eps) * gamma + beta, statistics per channel (axis 1), biased variance",
        category="normalization",
        inputs=(x, gamma, beta),
        params=(Param("eps", 1e-5, eps, "added to the variance inside the root"),),
        layout=Layout("channels"),
        output_indices=(b, c, s),
        output=(x[b, c, s] - mean) / sp.sqrt(variance + eps) * gamma[c] + beta[c],
        where=(("mu", mean), ("sigma", sp.sqrt(variance + eps))),
        torch="torch.nn.functional.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)",
        notes=("x of shape (N, C) or (N, C, *spatial) is viewed as (N, C, S), S the spatial size.",
               "Training mode: the batch's own mean and biased variance, as PyTorch uses to normalise."),
    )
