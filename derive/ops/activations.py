"""Activation functions: relu, leaky_relu, sigmoid, silu, softplus, gelu (exact or tanh form)."""

from __future__ import annotations

import sympy as sp

from ..model import OperatorModel, Param
from ..model.functions import sigmoid as logistic
from ..model.functions import softplus as soft_plus
from ..model.registry import register
from .elementwise import unary

KINK = "the derivative at the kink x = 0 is taken from the branch x <= 0, as PyTorch does"


@register
def relu() -> OperatorModel:
    return unary("relu", lambda x: sp.Piecewise((x, x > 0), (0, True)), "max(x, 0)",
                 "torch.relu(x)", category="activation", cite=("nair2010rectified",),
                 notes=(KINK + " (relu'(0) = 0).",))


@register
def leaky_relu() -> OperatorModel:
    slope = sp.Symbol("alpha", positive=True)
    return unary("leaky_relu", lambda x: sp.Piecewise((x, x > 0), (slope * x, True)),
                 "x for x > 0, negative_slope * x otherwise", "torch.nn.functional.leaky_relu(x, negative_slope)",
                 category="activation", cite=("maas2013rectifier",),
                 params=(Param("negative_slope", 0.01, slope, "slope for x <= 0"),),
                 notes=(KINK + ".",))


@register
def sigmoid() -> OperatorModel:
    return unary("sigmoid", logistic, "1 / (1 + exp(-x))", "torch.sigmoid(x)", category="activation")


@register
def silu() -> OperatorModel:
    return unary("silu", lambda x: x * logistic(x), "x * sigmoid(x)", "torch.nn.functional.silu(x)",
                 category="activation", cite=("elfwing2018sigmoid", "ramachandran2017searching"))


@register
def softplus() -> OperatorModel:
    return unary("softplus", soft_plus, "log(1 + exp(x))", "torch.nn.functional.softplus(x)",
                 category="activation", cite=("dugas2001incorporating",))


@register
def gelu(approximate: str = "none") -> OperatorModel:
    if approximate == "none":
        def function(x):
            return x / 2 * (1 + sp.erf(x / sp.sqrt(2)))
    elif approximate == "tanh":
        def function(x):
            return x / 2 * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (x + sp.Rational(44715, 10**6) * x**3)))
    else:
        raise ValueError(f"gelu: approximate={approximate!r} is not 'none' or 'tanh'")
    choice = Param("approximate", "none", None, "'none': x Phi(x) with the exact normal CDF; 'tanh': its tanh form",
                   choices=("none", "tanh"))
    return unary("gelu", function, "x * Phi(x), Phi the standard normal CDF (or its tanh approximation)",
                 "torch.nn.functional.gelu(x, approximate=approximate)", category="activation", params=(choice,),
                 cite=("hendrycks2016gelu",))
