"""Derivatives along tangents: an expression differentiated in the direction of its names' tangents.

``along(expr, names)`` is d/dt expr(a + t ȧ) at t = 0, where every entry ``a[i]`` (or symbol ``a``)
whose name is in ``names`` moves along its tangent ``dot_a[i]`` at the same indices.  This is the
chain and product rules applied to the expression as written (a sum's derivative the sum of its
summand's): no Jacobian entry and no Kronecker delta is formed, so a VJP written through x̂ and
sigma differentiates into the same names and their tangents.  ``scaled_product_rule`` writes the
part that only rescales the expression (by sigma^-1, say) through the expression itself:
d(E) = -(sigma-dot / sigma) E + sigma^-1 d(rest).
"""

from __future__ import annotations

from collections.abc import Iterable

import sympy as sp

TANGENT_PREFIX = "dot_"


def tangent_of_name(name: str) -> str:
    return TANGENT_PREFIX + name


def _name(expr: sp.Expr) -> str | None:
    if isinstance(expr, sp.Indexed):
        return str(expr.base.label)
    return expr.name if isinstance(expr, sp.Symbol) else None


def tangent(expr: sp.Expr) -> sp.Expr:
    """The tangent of one entry or symbol: ``dot_a[i]`` for ``a[i]``, ``dot_a`` for ``a``."""
    if isinstance(expr, sp.Indexed):
        return sp.IndexedBase(tangent_of_name(str(expr.base.label)))[expr.indices]
    return sp.Symbol(tangent_of_name(expr.name))


def along(expr: sp.Expr, names: Iterable[str]) -> sp.Expr:
    """``expr`` differentiated along the tangents of the entries and symbols named in ``names``."""
    moving = set(names)
    t = sp.Dummy("t")
    shifted = expr.replace(lambda e: isinstance(e, sp.Indexed) and str(e.base.label) in moving,
                           lambda e: e + t * tangent(e))
    shifted = shifted.xreplace({s: s + t * tangent(s) for s in shifted.free_symbols
                                if isinstance(s, sp.Symbol) and s.name in moving})
    return sp.diff(shifted, t).subs(t, 0)


def scaled_product_rule(expr: sp.Expr, names: Iterable[str], scales: Iterable[str],
                        whole: sp.Expr) -> sp.Expr:
    """``along(expr, names)`` with the factors of ``expr`` that are powers of a name in ``scales``
    differentiated through ``whole`` (which stands for ``expr``): p (ȧ / a) whole for each a^p."""
    names, scaling = set(names), set(scales)
    factors = sp.Mul.make_args(expr)
    scaled = [f for f in factors if _name(f.as_base_exp()[0]) in scaling and f.as_base_exp()[1].is_number]
    if not scaled:
        return along(expr, names)
    rest = sp.Mul(*[f for f in factors if f not in scaled])
    rate = sp.Add(*[exponent * tangent(base) / base for base, exponent in (f.as_base_exp() for f in scaled)])
    return rate * whole + sp.Mul(*scaled) * along(rest, names)
