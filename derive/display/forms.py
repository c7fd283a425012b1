"""Displayed forms of derived expressions, in the documents' notation (``derive.display.notation``).

``readable`` writes a model's named intermediates (mu_c, sigma_c, r, S) into an expression, also
into the open derivatives of a derivation step, with the index names of the documents;
``equation_latex`` is one displayed equation as LaTeX, broken into aligned lines where it is wide;
``NotationPrettyPrinter`` is SymPy's Unicode printer with the same names (ȳ, ẋ, ϵ, σ) for
``derive show``.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.pretty.pretty import PrettyPrinter
from sympy.printing.pretty.stringpict import prettyForm

from ..calculus.indices import readable_dummies
from ..model import OperatorModel
from .names import Intermediates, displayed, preferred_indices
from .notation import DisplayPartial, function_symbol, unicode_name

DISPLAY_WIDTH = 48.0
"""Widest line a notebook displays, in the letters of ``tex_width``: a letter sets 6.0-6.8 pt in
10 pt TeX (measured with pdflatex on derived VJPs), so about 330 pt, 560 px at MathJax's 17 px em,
which leaves room for a label and a note in a 700 px column."""


def readable(expr: sp.Expr, model: OperatorModel) -> sp.Expr:
    """``expr`` with the model's named quantities written in and the documents' index names."""
    return displayed(expr, Intermediates(model), preferred_indices(model))


def intermediate_symbols(model: OperatorModel) -> list[tuple[sp.Expr, sp.Expr]]:
    """(symbol, definition written with the earlier names) for each named quantity of ``model``."""
    return Intermediates(model).definitions()


def equation_latex(lhs: str | sp.Expr | None, expr: sp.Expr, output: str = "y",
                   width: float | None = DISPLAY_WIDTH, note: str = "") -> str:
    """``lhs = expr`` in the documents' LaTeX (``expr`` alone for None, ``= expr`` for ''), ``note``
    in text after it; wider than ``width`` letters (``tex_width``), an ``aligned`` block broken at
    top-level + and - (and inside a too-wide product's bracketed sum).  ``lhs``: LaTeX or an expression."""
    from .latex import DerivationLatexPrinter
    from .layout import break_lines, tex_width

    printer = DerivationLatexPrinter(output)
    left = lhs if isinstance(lhs, str) or lhs is None else printer.doprint(lhs)
    tail = rf"\qquad\text{{({note})}}" if note else ""
    whole = printer.doprint(expr) if left is None else f"{left} = {printer.doprint(expr)}".lstrip()
    if width is None or tex_width(whole + tail) <= width:
        return whole + tail
    lead = 0.0 if left is None else tex_width(left) + 1.6
    lines = break_lines(printer, expr, max(width - lead, 24.0))
    if tail and lead + 1.0 + tex_width(lines[-1] + tail) > width:  # the note on a line of its own
        tail = rf" \\ &\quad\text{{({note})}}"
    body = [f"&{lines[0]}" if left is None else f"{left} &= {lines[0]}".lstrip()]
    body += [rf"&\quad {{}} {line}" for line in lines[1:]]
    return r"\begin{aligned}" + r" \\ ".join(body) + tail + r"\end{aligned}"


class NotationPrettyPrinter(PrettyPrinter):
    """SymPy's 2-D printer with the documents' names: ȳ[j] for dy[j], ẋ[j], ϵ, γ[i], σ(x)."""

    def __init__(self, output: str = "y", settings: dict | None = None) -> None:
        super().__init__(settings)
        self.output = output

    def _name(self, name: str) -> prettyForm:
        return prettyForm(unicode_name(name, self.output) if self._use_unicode else name)

    def _print_Symbol(self, expr: sp.Symbol, bold_name: bool = False) -> prettyForm:
        if self._use_unicode and unicode_name(expr.name, self.output) != expr.name:
            return self._name(expr.name)
        return super()._print_Symbol(expr, bold_name)

    def _print_IndexedBase(self, expr: sp.IndexedBase) -> prettyForm:
        return self._name(str(expr.label))

    def _print_Indexed(self, expr: sp.Indexed) -> prettyForm:
        indices = prettyForm(*self._print_seq(expr.indices, delimiter=", ").parens("[", "]"))
        return prettyForm(*self._print_IndexedBase(expr.base).right(indices))

    def _print_Function(self, expr: sp.Function, sort: bool = False, func_name: str | None = None,
                        left: str = "(", right: str = ")") -> prettyForm:
        symbol = function_symbol(type(expr).__name__, latex=False) if self._use_unicode else None
        return super()._print_Function(expr, sort, func_name or symbol, left, right)

    def _print_DisplayPartial(self, expr: DisplayPartial) -> prettyForm:
        inner, wrt = expr.args
        d = "∂" if self._use_unicode else "d"
        by = prettyForm(*prettyForm(d).right(self._print(wrt)))
        if isinstance(inner, (sp.Indexed, sp.Symbol)):
            return prettyForm(*prettyForm(d).right(self._print(inner))) / by
        return prettyForm(*(prettyForm(d) / by).right(prettyForm(*self._print(inner).parens())))


def compact_readable(expr: sp.Expr, model: OperatorModel) -> sp.Expr:
    """A compact form (``calculus/compact.py``) for reading: each named quantity by its bare name
    (mu, not mu[p]: its indices are those of the entry it belongs to), distinct nested sum names."""
    names = {name for name, _ in model.where}
    expr = expr.replace(lambda e: isinstance(e, sp.Indexed) and str(e.base.label) in names,
                        lambda e: sp.Symbol(str(e.base.label), **e.base.assumptions0))
    return readable_dummies(expr)

