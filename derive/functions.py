"""Activation functions with stable numerical forms, as SymPy functions the engine differentiates.

Each knows its derivative (``fdiff``), its elementary definition (``as_elementary``, which the test
oracle differentiates independently), its LaTeX, and how the NumPy printer writes it stably.
"""

from __future__ import annotations

import sympy as sp


class sigmoid(sp.Function):  # noqa: N801  (reads like the maths)
    """The logistic function 1 / (1 + exp(-x)), printed as scipy.special.expit (finite for any x)."""

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        value = sigmoid(self.args[0])
        return value * (1 - value)

    def as_elementary(self) -> sp.Expr:
        return 1 / (1 + sp.exp(-self.args[0]))

    def _latex(self, printer, exp=None) -> str:
        base = rf"\sigma\left({printer._print(self.args[0])}\right)"
        return base if exp is None else rf"{base}^{{{exp}}}"


class softplus(sp.Function):  # noqa: N801
    """log(1 + exp(x)), printed as numpy.logaddexp(0, x) (finite for any x)."""

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sigmoid(self.args[0])

    def as_elementary(self) -> sp.Expr:
        return sp.log(1 + sp.exp(self.args[0]))

    def _latex(self, printer, exp=None) -> str:
        base = rf"\operatorname{{softplus}}\left({printer._print(self.args[0])}\right)"
        return base if exp is None else rf"{base}^{{{exp}}}"


def elementary(expr: sp.Expr) -> sp.Expr:
    """``expr`` with every function that carries an elementary definition (``as_elementary``: this
    module's, or a model's own) written out, so SymPy can evaluate and compare it."""
    return expr.replace(lambda e: isinstance(e, sp.Function) and hasattr(e, "as_elementary"),
                        lambda e: e.as_elementary())


class at_most(sp.Function):  # noqa: N801
    """The indicator [j <= i] of two indices (1 or 0): a causal mask.  Constant in every input."""

    nargs = 2

    @classmethod
    def eval(cls, j: sp.Expr, i: sp.Expr):
        if j.is_Integer and i.is_Integer:
            return sp.S.One if j <= i else sp.S.Zero
        return None

    def as_elementary(self) -> sp.Expr:
        return self

    def _latex(self, printer, exp=None) -> str:
        j, i = (printer._print(a) for a in self.args)
        return rf"[{j} \le {i}]"


class MaxOver(sp.Function):
    """MaxOver(f, l[, mask]): the maximum of f over the index l, which it binds, taken where the
    0/1 ``mask`` is 1 (a keepdims max in kernels)."""

    nargs = (2, 3)
    binds = 1
    """Position of the argument this function binds, as a Sum binds its summation index."""

    def _latex(self, printer, exp=None) -> str:
        body, var = (printer._print(a) for a in self.args[:2])
        return rf"\max_{{{var}}} {body}"
