"""Focal loss (Lin et al. 2017) on probabilities with soft targets:
y_i = -(1 - p_t)^gamma log(p_t), p_t = p_i t_i + (1 - p_i)(1 - t_i), gamma a parameter used as an
exponent.  It is defined only for p and t in [0, 1]: the inputs declare it (domain=), so every
proof draws inside, and gamma's declared domain is where the proofs draw it."""

import sympy as sp

from derive.model import Input, OperatorModel, Param, index, size
from derive.registry import register


@register
def focal_loss() -> OperatorModel:
    n = size("n")
    i = index("i", n)
    p = Input("p", (n,), domain=sp.Interval(0, 1))
    t = Input("t", (n,), differentiable=False, domain=sp.Interval(0, 1))
    gamma = sp.Symbol("gamma", positive=True)
    p_t = p[i] * t[i] + (1 - p[i]) * (1 - t[i])
    return OperatorModel(
        name="focal_loss",
        summary="-(1 - p_t)^gamma log(p_t) entry by entry, p_t = p t + (1 - p)(1 - t)",
        category="loss",
        inputs=(p, t),
        params=(Param("gamma", 2.0, gamma, "focusing exponent", domain=sp.Interval(0, 5)),),
        output_indices=(i,),
        output=-(1 - p_t) ** gamma * sp.log(p_t),
    )
