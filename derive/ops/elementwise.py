"""One-line elementwise functions of one input: sin, cos, tanh, exp, log."""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from ..model import Input, Layout, OperatorModel, index, size
from ..model.registry import register


def unary(name: str, function: Callable[[sp.Expr], sp.Expr], summary: str, torch: str,
          domain: str = "real", category: str = "elementwise", **extra) -> OperatorModel:
    """y_i = f(x_i), entry by entry, for an input of any shape."""
    n = size("n")
    i = index("i", n)
    x = Input("x", (n,), domain=domain)
    return OperatorModel(name=name, summary=summary, category=category, inputs=(x,), output_indices=(i,),
                         output=function(x[i]), layout=Layout("elementwise"), torch=torch, **extra)


@register
def sin() -> OperatorModel:
    return unary("sin", sp.sin, "sin(x)", "torch.sin(x)")


@register
def cos() -> OperatorModel:
    return unary("cos", sp.cos, "cos(x)", "torch.cos(x)")


@register
def tanh() -> OperatorModel:
    return unary("tanh", sp.tanh, "tanh(x)", "torch.tanh(x)")


@register
def exp() -> OperatorModel:
    return unary("exp", sp.exp, "exp(x)", "torch.exp(x)")


@register
def log() -> OperatorModel:
    return unary("log", sp.log, "natural logarithm, log(0) = -inf as in NumPy", "torch.log(x)", domain="positive")
