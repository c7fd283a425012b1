"""Derivatives along tangents (``derive.calculus.tangent``): the chain and product rules on the
expression as written, checked against plain ``sympy.diff`` of the expression written out."""

from __future__ import annotations

import sympy as sp

from derive.calculus.tangent import along, scaled_product_rule

n = 3
x, dot_x = sp.symbols("x:3"), sp.symbols("dot_x:3")
sigma, dot_sigma, gamma, dot_gamma = sp.symbols("sigma dot_sigma gamma dot_gamma")


def test_along_is_the_directional_derivative():
    t = sp.Symbol("t")
    expr = sp.exp(x[0] * gamma) / (sigma + x[1] ** 2)
    names = {"x0", "x1", "gamma", "sigma"}
    moved = {x[0]: x[0] + t * dot_x[0], x[1]: x[1] + t * dot_x[1], gamma: gamma + t * dot_gamma,
             sigma: sigma + t * dot_sigma}
    expected = sp.diff(expr.xreplace(moved), t).subs(t, 0)
    assert sp.simplify(along(expr, names) - expected) == 0
    assert along(expr, set()) == 0


def test_along_reaches_entries_inside_sums_at_their_own_indices():
    m = sp.Symbol("m", integer=True, positive=True)
    j, k = sp.Idx("j", m), sp.Idx("k", m)
    a = sp.IndexedBase("a")
    expr = a[k] * sp.Sum(a[j] ** 2, (j, 0, m - 1))
    got = along(expr, {"a"})
    dot_a = sp.IndexedBase("dot_a")
    assert got == dot_a[k] * sp.Sum(a[j] ** 2, (j, 0, m - 1)) + a[k] * sp.Sum(2 * a[j] * dot_a[j], (j, 0, m - 1))


def test_a_scale_factor_differentiates_through_the_whole():
    """d(g / sigma) = -(sigma-dot / sigma) E + d(g) / sigma, with E standing for g / sigma."""
    whole = sp.Symbol("E")
    expr = (gamma * x[0] - x[1]) / sigma
    got = scaled_product_rule(expr, {"gamma", "x0", "x1", "sigma"}, {"sigma"}, whole)
    assert sp.simplify(got.subs(whole, expr) - along(expr, {"gamma", "x0", "x1", "sigma"})) == 0
    assert got.has(whole) and got.coeff(whole) == -dot_sigma / sigma
