"""The LaTeX expression printer (``derive.display.latex``): indices one-based with clean subscripts,
sums bracketed where they are not the last factor, reciprocals of sums as fractions."""

from __future__ import annotations

import re

import pytest
import sympy as sp

from derive.display.latex import DerivationLatexPrinter, IndexLetters


def test_indices_print_one_based_with_clean_subscripts():
    n = sp.Symbol("n", integer=True, positive=True)
    i, j, k = (sp.Idx(name, n) for name in "ijk")
    x, gamma = sp.IndexedBase("x"), sp.IndexedBase("gamma")
    p = DerivationLatexPrinter()
    assert p.doprint(sp.Sum(x[j] ** 2, (j, 0, n - 1))) == r"\sum_{j=1}^{n} x_{j}^{2}"
    assert p.doprint(gamma[i]) == r"\gamma_{i}"
    assert p.doprint(sp.IndexedBase("a")[i, k]) == r"a_{ik}"
    assert p.doprint(x[0]) == r"x_{1}" and p.doprint(x[i + 1]) == r"x_{i + 1}"
    assert p.doprint(sp.KroneckerDelta(i, k)) == r"\delta_{ik}"
    assert p.doprint(sp.IndexedBase("dy")[k]) == r"\bar{y}_{k}"
    assert p.doprint(sp.Symbol("dy")) == r"\bar{y}"
    assert p.doprint(sp.IndexedBase("dot_x")[k]) == r"\dot{x}_{k}"
    assert "_{0" not in p.doprint(sp.Sum(x[j], (j, 0, n - 1)) * sp.Sum(x[k], (k, 0, n - 1)))


def test_a_sum_that_is_not_the_last_factor_is_bracketed():
    n = sp.Symbol("n", integer=True, positive=True)
    j, m = sp.Idx("j", n), sp.Idx("m", n)
    x, y = sp.IndexedBase("x"), sp.IndexedBase("y")
    tex = DerivationLatexPrinter().doprint(sp.Sum(x[j], (j, 0, n - 1)) * sp.Sum(y[m], (m, 0, n - 1)))
    assert tex.startswith(r"\left(\sum_{j=1}^{n} x_{j}\right)")


def test_a_reciprocal_of_a_sum_prints_as_a_fraction():
    """SymPy prints 1/x through _print_Mul with a Pow: the sum in the denominator stays there."""
    n = sp.Symbol("n", integer=True, positive=True)
    j, m = sp.Idx("j", n), sp.Idx("m", n)
    x, y = sp.IndexedBase("x"), sp.IndexedBase("y")
    p = DerivationLatexPrinter()
    total = sp.Sum(sp.exp(x[j]), (j, 0, n - 1))
    assert p.doprint(1 / total) == r"\frac{1}{\sum_{j=1}^{n} e^{x_{j}}}"
    tex = p.doprint(sp.Sum(y[m], (m, 0, n - 1)) / total)
    assert tex.startswith(r"\frac{1}{\sum_{j=1}^{n} e^{x_{j}}}") and not tex.startswith("-")


def test_a_vjp_may_be_shown_in_the_outputs_letters_without_a_clash():
    """x̄_k = Σ_i ȳ_i a_{ik} shown as x̄_i = Σ_j ȳ_j a_{ji}: k takes i's letter, the bound i another
    letter of its axis (not j, which the equation shows); the letters come back afterwards."""
    n = sp.Symbol("n", integer=True, positive=True)
    i, j, k = (sp.Idx(name, n) for name in "ijk")
    dy, a, b = sp.IndexedBase("dy"), sp.IndexedBase("a"), sp.IndexedBase("b")
    expr = sp.Sum(dy[i] * a[i, k], (i, 0, n - 1)) + sp.Sum(b[j], (j, 0, n - 1))
    letters = IndexLetters(set())
    p = DerivationLatexPrinter(letters=letters)
    before = p.doprint(expr)
    with letters.as_letters([(k, i)], expr.atoms(sp.Idx)):
        shown = p.doprint(expr)
    assert r"a_{ik}" in before and r"a_{ik}" not in shown
    bound = re.search(r"a_\{(\w)i\} \\bar\{y\}_\{\1\}", shown)
    assert bound and bound.group(1) not in "ijk", shown  # i's own letter moved to a fresh one
    assert p.doprint(expr) == before


def test_a_scope_that_would_show_two_indices_as_one_letter_is_refused(monkeypatch):
    n = sp.Symbol("n", integer=True, positive=True)
    i, k = sp.Idx("i", n), sp.Idx("k", n)
    letters = IndexLetters(set())
    monkeypatch.setattr(letters, "_free_letter", lambda idx, taken: "i")  # planted: the clash kept
    with pytest.raises(ValueError, match="two indices as one letter"):
        with letters.as_letters([(k, i)], {i, k}):
            pass
    assert letters.scoped == {}
