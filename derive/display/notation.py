"""The one notation of displayed maths: the documents', used by the LaTeX target, ``derive.latex``,
``derive show`` and the notebooks alike.

A model's names are code (``dy``, ``dot_x``, ``epsilon``, ``sigmoid``); displayed, the cotangent of
the output y is ȳ (``\\bar{y}``), the tangent of an input x is ẋ (``\\dot{x}``), the input's own
cotangent x̄, epsilon the lunate ϵ that ``\\epsilon`` sets, the logistic function σ.  The second order's
result, the derivative of x̄ along the tangents (a kernel's ``vjp_jvp``), is x̄ with a dot: ``\\dot{\\bar{x}}``,
x̄̇ in Unicode, ``dot_dx`` typed (``second_order_name``).  Greek names
follow SymPy (``gamma`` -> γ, ``\\gamma``).  ``DisplayPartial`` is an open derivative as displayed.
"""

from __future__ import annotations

import unicodedata

import sympy as sp
from sympy.printing.pretty.pretty_symbology import pretty_symbol

from ..calculus.pipeline import COTANGENT
from ..model.functions import sigmoid

TANGENT_PREFIX = "dot_"

SYMBOLS: dict[str, tuple[str, str]] = {"epsilon": (r"\epsilon", "ϵ")}
"""Names SymPy would display otherwise: (LaTeX, Unicode); Unicode ε would not be what \\epsilon sets."""

FUNCTIONS: dict[str, tuple[str, str]] = {"sigmoid": sigmoid.SYMBOL, "logistic": sigmoid.SYMBOL}
"""Functions shown by a symbol rather than by their name: (LaTeX, Unicode)."""

_BAR, _DOT, _OVERLINE = "\u0304", "\u0307", "\u0305"  # combining macron, dot above, overline


class DisplayPartial(sp.Expr):
    """An open derivative as displayed: d(args[0]) / d(args[1]), whatever args[0] has become.

    Unlike ``calculus.differentiate.Partial`` it never folds to zero, so named quantities (r, mu)
    can be written into what it differentiates.
    """

    is_commutative = True


def tangent_of(name: str) -> str | None:
    """The input whose tangent ``name`` is (``dot_x`` -> ``x``), or None."""
    rest = name[len(TANGENT_PREFIX):] if name.startswith(TANGENT_PREFIX) else ""
    return rest or None


def latex_symbol(name: str) -> str | None:
    """The LaTeX of a plain name the table fixes (None: print it as SymPy does)."""
    return SYMBOLS[name][0] if name in SYMBOLS else None


def unicode_name(name: str, output: str = "y") -> str:
    """A model's name as displayed in Unicode: ``dy`` -> ȳ, ``dot_x`` -> ẋ, ``epsilon`` -> ϵ, γ
    (composed where Unicode has the letter with its accent, as ȳ and ẋ)."""
    return unicodedata.normalize("NFC", _unicode_name(name, output))


def _unicode_name(name: str, output: str) -> str:
    if name == COTANGENT:
        return bar(_unicode_name(output, output))
    tangent = tangent_of(name)
    if tangent:
        return _unicode_name(tangent, output) + _DOT
    if name in SYMBOLS:
        return SYMBOLS[name][1]
    if name.endswith("_hat") and len(name) > 4:  # x_hat -> x̂, as the documents' \\hat{x}
        return _unicode_name(name[:-4], output) + "\u0302"
    return pretty_symbol(name) if name.isalpha() else name


def bar(unicode: str) -> str:
    """The cotangent of a displayed name: x -> x̄ (a macron), a word overlined letter by letter."""
    if len(unicode) == 1:
        return unicodedata.normalize("NFC", unicode + _BAR)
    return "".join(char + _OVERLINE for char in unicode)


def second_order_name(input_name: str, style: str = "unicode", shown: str | None = None) -> str:
    """The derivative of an input's cotangent along the tangents (``vjp_jvp``), in ``style``
    "ascii" (``dot_dx``), "unicode" (x̄̇) or "latex" (``\\dot{\\bar{x}}``); ``shown``: the input as
    already displayed in that style (its Unicode or LaTeX symbol), else its name."""
    if style == "ascii":
        return f"{TANGENT_PREFIX}d{input_name}"
    if style == "latex":
        return rf"\dot{{\bar{{{shown or input_name}}}}}"
    return unicodedata.normalize("NFC", bar(shown or unicode_name(input_name)) + _DOT)


def function_symbol(name: str, latex: bool) -> str | None:
    """The symbol shown for a function (``sigmoid`` -> σ), or None to show its name."""
    return FUNCTIONS[name][0 if latex else 1] if name in FUNCTIONS else None
