"""Line layout of results (``derive.display.layout``): short fractions at text size, terms after a
broken product on its last line, capitals and angle brackets estimated at their width."""

from __future__ import annotations

import sympy as sp

from derive.display.latex import DerivationLatexPrinter
from derive.display.layout import break_lines, tex_width, text_fractions


def test_short_fractions_are_set_at_text_size_and_nested_ones_are_not():
    assert text_fractions(r"\frac{\gamma_{i}}{\sigma} x") == r"\tfrac{\gamma_{i}}{\sigma} x"
    assert text_fractions(r"\frac{1}{\sqrt{E}} a") == r"\tfrac{1}{\sqrt{E}} a"
    for kept in (r"\frac{a}{\frac{b}{c}}", r"\frac{\sum_{j} x_{j}}{n}",
                 r"\frac{\langle x \rangle_{j}}{2}"):
        assert text_fractions(kept) == kept
    assert text_fractions(r"\frac{a}{b} + \frac{c}{\frac{d}{e}}") == r"\tfrac{a}{b} + \frac{c}{\frac{d}{e}}"


def test_a_term_after_a_broken_product_may_share_its_last_line():
    n = sp.Symbol("n", integer=True, positive=True)
    i = sp.Idx("i", n)
    x, y, w = sp.IndexedBase("x"), sp.IndexedBase("y"), sp.IndexedBase("w")
    a, b, c, d = sp.symbols("a b c d")
    product = (a * x[i] + b * y[i] + c * w[i] + d * x[i] * y[i]) / sp.Symbol("sigma")
    expr = product - sp.Symbol("epsilon")  # printed after the product
    printer = DerivationLatexPrinter()
    lines = break_lines(printer, expr, 14)
    assert len(lines) > 1 and r"\epsilon" in lines[-1]
    assert not any(line.strip() in (r"- \epsilon", r"\epsilon") for line in lines), lines  # not a line alone
    assert all(tex_width(line) <= 14 for line in lines[1:]), lines


def test_capitals_and_angle_brackets_are_estimated_at_their_widths():
    assert tex_width("P") > tex_width("p")
    assert tex_width(r"\langle x \rangle") < tex_width("(x)") + 1.0
