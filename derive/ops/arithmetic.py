"""Binary arithmetic with NumPy broadcasting: add, sub, mul, div."""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from ..model import Input, Layout, OperatorModel, index, size
from ..model.registry import register


def binary(name: str, function: Callable[[sp.Expr, sp.Expr], sp.Expr], summary: str, torch: str,
           b_domain: str = "real") -> OperatorModel:
    """y_i = f(a_i, b_i); a and b broadcast, each gradient is summed back to its input's shape."""
    n = size("n")
    i = index("i", n)
    a, b = Input("a", (n,)), Input("b", (n,), domain=b_domain)
    return OperatorModel(name=name, summary=summary, category="elementwise", inputs=(a, b), output_indices=(i,),
                         output=function(a[i], b[i]), layout=Layout("elementwise"), torch=torch)


@register
def add() -> OperatorModel:
    return binary("add", lambda a, b: a + b, "a + b", "torch.add(a, b)")


@register
def sub() -> OperatorModel:
    return binary("sub", lambda a, b: a - b, "a - b", "torch.sub(a, b)")


@register
def mul() -> OperatorModel:
    return binary("mul", lambda a, b: a * b, "a * b", "torch.mul(a, b)")


@register
def div() -> OperatorModel:
    return binary("div", lambda a, b: a / b, "a / b", "torch.div(a, b)", b_domain="nonzero")
