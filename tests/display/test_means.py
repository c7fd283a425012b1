"""Means as results show them (``derive.display.means``): a sum divided by its count is <f>_i, one
over two axes divided by both counts is a mean over both, anything else stays a sum; the printed
forms are display only, equal to the sums they stand for."""

from __future__ import annotations

import sympy as sp

from derive.display.latex import DerivationLatexPrinter
from derive.display.means import Mean, count, stands_for, with_means

n, N, S = (sp.Symbol(name, integer=True, positive=True) for name in ("n", "N", "S"))
i, j = sp.Idx("i", n), sp.Idx("j", n)
b, s = sp.Idx("b", N), sp.Idx("s", S)
x, y, dy, w = (sp.IndexedBase(name) for name in ("x", "y", "dy", "w"))
sigma = sp.Symbol("sigma", positive=True)


def _sums(expr: sp.Expr) -> sp.Expr:
    """A displayed expression with every mean written as the sum over its count again."""
    return expr.replace(lambda e: isinstance(e, Mean), lambda e: sp.Sum(e.function, *e.limits) / count(e.limits))


def test_a_sum_over_its_count_is_a_mean_and_prints_as_one():
    expr = x[i] - y[i] * sp.Sum(dy[j] * y[j], (j, 0, n - 1)) / (n * sigma)
    shown = with_means(expr, {n})
    assert shown.has(Mean) and not shown.has(sp.Sum)
    assert sp.expand(_sums(shown) - expr) == 0
    tex = DerivationLatexPrinter().doprint(shown)
    assert r"\langle \bar{y}_{j} y_{j} \rangle_{j}" in tex and r"\sum" not in tex


def test_a_sum_over_two_axes_over_both_counts_is_a_mean_over_both():
    expr = sp.Sum(dy[b, i] * w[b, s], (b, 0, N - 1), (s, 0, S - 1)) / (N * S)
    shown = with_means(expr, {N, S})
    assert isinstance(shown, Mean) and len(shown.limits) == 2
    assert DerivationLatexPrinter().doprint(shown).endswith(r"\rangle_{bs}")


def test_a_sum_not_divided_by_its_whole_count_stays_a_sum():
    half = sp.Sum(dy[b, i], (b, 0, N - 1), (s, 0, S - 1)) / N  # divided by N, summed over N S terms
    assert with_means(half, {N, S}) == half
    assert with_means(sp.Sum(x[j], (j, 0, n - 1)), {n}) == sp.Sum(x[j], (j, 0, n - 1))
    assert with_means(sp.Sum(x[j], (j, 0, n - 1)) / sigma, {n}).has(sp.Sum)  # sigma is not a count


def test_a_count_before_a_bracket_of_sums_is_shared_out_to_each():
    expr = (sp.Sum(x[j] * y[j], (j, 0, n - 1)) - sigma * sp.Sum(y[j], (j, 0, n - 1))) / n
    shown = with_means(expr, {n})
    assert not shown.has(sp.Sum) and len(shown.atoms(Mean)) == 2
    assert sp.expand(_sums(shown) - expr) == 0


def test_a_sum_of_sums_or_exponentials_stays_a_sum_that_a_line_can_break_inside():
    inner = sp.Sum(x[j], (j, 0, n - 1))
    nested = sp.Sum(y[i] * inner, (i, 0, n - 1)) / n
    assert with_means(nested, {n}) == nested
    tilted = sp.Sum(sp.exp(x[j]), (j, 0, n - 1)) / n
    assert with_means(tilted, {n}) == tilted


def test_a_product_kept_unevaluated_upstream_is_compared_by_value():
    """Regression (a learnable positive temperature's vjp): the same terms in another factor order
    are the same expression, and a mean that drops a count is not."""
    t = sp.Symbol("t", positive=True)
    a, b = sp.Sum(x[j] * y[j], (j, 0, n - 1)), sp.Sum(y[j], (j, 0, n - 1))
    unevaluated = sp.Mul(b ** -2, a, t ** -2, evaluate=False) - sp.Mul(t ** -2, a, b ** -2, evaluate=False) + a / n
    shown = with_means(unevaluated, {n})
    assert shown.has(Mean) and stands_for(shown, unevaluated)
    assert not stands_for(shown * n, unevaluated)
