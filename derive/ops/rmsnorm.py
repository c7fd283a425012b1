"""RMSNorm over the last axis: y_i = x_i / sqrt(mean_j x_j^2 + eps) * gamma_i + beta_i."""

import sympy as sp

from ..model import Input, OperatorModel, Param, index, size
from ..model.registry import register


@register
def rmsnorm() -> OperatorModel:
    n = size("n")
    i, j = index("i", n), index("j", n)
    x = Input("x", (n,))
    gamma = Input("gamma", (n,), optional=True, default=1)
    beta = Input("beta", (n,), optional=True, default=0)
    eps = sp.Symbol("epsilon", positive=True)
    rms = sp.sqrt(sp.Sum(x[j] ** 2, (j, 0, n - 1)) / n + eps)
    return OperatorModel(
        name="rmsnorm",
        cite=("zhang2019root",),
        summary="x / sqrt(mean(x^2) + eps) * gamma + beta over the last axis",
        category="normalization",
        inputs=(x, gamma, beta),
        params=(Param("eps", 1e-6, eps, "added to the mean square inside the root"),),
        output_indices=(i,),
        output=x[i] / rms * gamma[i] + beta[i],
        where=(("r", rms),),
        torch="torch.nn.functional.rms_norm(x, (n,), gamma, eps) + beta",
        notes=("eps sits inside the root, so r >= sqrt(eps) > 0: 1/r and 1/r^3 stay finite even for a row "
               "of zeros (gradient gamma * dy / sqrt(eps)).",),
    )
