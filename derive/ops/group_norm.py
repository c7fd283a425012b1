"""Group normalisation: channels split into groups, statistics per sample and group."""

import sympy as sp

from ..model import Input, Layout, OperatorModel, Param, index, size
from ..model.registry import register


@register
def group_norm() -> OperatorModel:
    N, G, D, S = size("N"), size("G"), size("D"), size("S")
    b, g, c, s = index("b", N), index("g", G), index("c", D), index("s", S)
    e, t = index("e", D), index("t", S)
    x = Input("x", (N, G, D, S))
    gamma = Input("gamma", (G, D), optional=True, default=1)
    beta = Input("beta", (G, D), optional=True, default=0)
    eps = sp.Symbol("epsilon", positive=True)
    count = D * S
    mean = sp.Sum(x[b, g, e, t], (e, 0, D - 1), (t, 0, S - 1)) / count
    variance = sp.Sum((x[b, g, e, t] - mean) ** 2, (e, 0, D - 1), (t, 0, S - 1)) / count
    return OperatorModel(
        name="group_norm",
        cite=("wu2018group",),
        summary="(x - mean) / sqrt(var + eps) * gamma + beta, statistics per sample over each group of channels",
        category="normalization",
        inputs=(x, gamma, beta),
        params=(Param("num_groups", None, None, "how many groups the C channels split into", required=True),
                Param("eps", 1e-5, eps, "added to the variance inside the root")),
        layout=Layout("groups", "num_groups"),
        output_indices=(b, g, c, s),
        output=(x[b, g, c, s] - mean) / sp.sqrt(variance + eps) * gamma[g, c] + beta[g, c],
        where=(("mu", mean), ("sigma", sp.sqrt(variance + eps))),
        torch="torch.nn.functional.group_norm(x, num_groups, gamma, beta, eps)",
        notes=("x of shape (N, C, *spatial) is viewed as (N, G, D, S) with C = G D channels; "
               "gamma and beta of shape (C,) as (G, D).",),
    )
