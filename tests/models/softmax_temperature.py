"""Softmax with a learnable temperature: y_i = exp(x_i / t) / sum_j exp(x_j / t) over the last
axis, t one scalar (an input with no axes) that is learnt with the rest and kept positive."""

import sympy as sp

from derive.model import Input, OperatorModel, index, size
from derive.registry import register


@register
def softmax_temperature() -> OperatorModel:
    n = size("n")
    i, j = index("i", n), index("j", n)
    x, t = Input("x", (n,)), Input("t", (), domain="positive")
    return OperatorModel(
        name="softmax_temperature",
        summary="softmax(x / t) over the last axis, t a learnable positive scalar",
        category="attention",
        inputs=(x, t),
        output_indices=(i,),
        output=sp.exp(x[i] / t[()]) / sp.Sum(sp.exp(x[j] / t[()]), (j, 0, n - 1)),
    )
