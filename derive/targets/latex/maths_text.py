"""Model prose (summaries, notes, parameter docs) with its formulas set as maths.

A summary such as ``(x - mean) / sqrt(var + eps) * gamma + beta over the last axis`` is read word by
word: at each place the longest run of words that reads as a formula (``derive.model.reader``: parsed over
a whitelist, never evaluated, with SymPy's automatic evaluation off) is printed by the LaTeX printer,
with the model's inputs and parameters under their symbols (``eps`` is $\\epsilon$); every other word is
escaped text.  A run counts as a formula only if it holds an operator or a call, or is a name of the
model (an input, a parameter, an axis length): a bare word (``mean``, ``axis``, ``a``) stays prose.
"""

from __future__ import annotations

import re

import sympy as sp

from ...display.latex import DerivationLatexPrinter
from ...model import OperatorModel
from ...model.functions import sigmoid, softplus
from ...model.reader import Grammar, ReadError, read
from .text import prose_text

FUNCTIONS = {"sqrt": sp.sqrt, "exp": sp.exp, "log": sp.log, "sin": sp.sin, "cos": sp.cos, "tan": sp.tan,
             "tanh": sp.tanh, "erf": sp.erf, "abs": sp.Abs, "max": sp.Max, "min": sp.Min, "sigmoid": sigmoid,
             "softplus": softplus}
"""Functions a formula may call, as SymPy's; any other known operator name is an opaque function."""
OPAQUE = ("sum", "mean", "var", "softmax", "log_softmax", "relu", "gelu", "silu", "Phi", "rms", "std")
"""Names that may be called and print upright (\\operatorname), or stand alone as a quantity."""
NAMES = {"inf": sp.oo, "pi": sp.pi}
_PUNCTUATION = ",.;:"
_EQUALS = re.compile(r"(?<![<>=!])=(?!=)")
"""A single '=' (an equation in prose), read as '=='."""
_MAX_WORDS = 24
"""A formula is at most this many words (keeps the search quadratic in a short text)."""


class _Quantity(sp.Symbol):
    """A word standing for a quantity (``mean``): printed upright."""

    def _latex(self, printer, exp=None) -> str:
        return r"\operatorname{" + self.name.replace("_", r"\_") + "}"


class _ProsePrinter(DerivationLatexPrinter):
    """The LaTeX printer with the model's names: inputs and parameters under their own symbols."""

    def __init__(self, symbols: dict[str, str]) -> None:
        super().__init__()
        self.symbols = symbols

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        if expr.name in self.symbols:
            return self.symbols[expr.name]
        tex = super()._print_Symbol(expr)
        return rf"\mathrm{{{tex}}}" if tex == expr.name and len(expr.name) > 1 else tex


def maths_text(text: str, model: OperatorModel, printer: DerivationLatexPrinter) -> str:
    """``text`` as LaTeX: its formulas in maths, the rest escaped prose."""
    symbols = {inp.name: printer.base_name(inp.name) for inp in model.inputs}
    symbols.update({p.name: printer.doprint(p.symbol) for p in model.params if p.symbol is not None})
    symbols.update({str(d): printer.doprint(d) for inp in model.inputs for d in inp.dims if isinstance(d, sp.Symbol)})
    grammar = _grammar(model)
    prose_printer = _ProsePrinter(symbols)
    words = text.split()
    out, at = [], 0
    while at < len(words):
        found = _formula(words, at, grammar, symbols)
        if found is None:
            out.append(prose_text(words[at]))
            at += 1
            continue
        end, expr, trailing = found
        out.append(f"${prose_printer.doprint(expr)}${prose_text(trailing)}")
        at = end
    return " ".join(out)


def _grammar(model: OperatorModel) -> Grammar:
    calls = {**FUNCTIONS, **{name: sp.Function(name) for name in OPAQUE}}
    names = {**NAMES, **{name: _Quantity(name) for name in OPAQUE}}
    names.update({inp.name: sp.Symbol(inp.name) for inp in model.inputs})
    names.update({p.name: sp.Symbol(p.name) for p in model.params})
    return Grammar(names=names, calls=calls, unknown_name=sp.Symbol, arithmetic=True, language="a formula")


def _formula(words: list[str], at: int, grammar: Grammar, symbols: dict[str, str]):
    """(end, expression, trailing punctuation) of the longest formula starting at word ``at``, or None."""
    for end in range(min(len(words), at + _MAX_WORDS), at, -1):
        candidate = " ".join(words[at:end])
        trailing = ""
        while candidate and (candidate[-1] in _PUNCTUATION or
                             (candidate[-1] == ")" and candidate.count(")") > candidate.count("("))):
            candidate, trailing = candidate[:-1], candidate[-1] + trailing
        if not candidate or not re.search(r"[A-Za-z0-9]", candidate):
            continue
        try:
            with sp.evaluate(False):
                expr = read(_EQUALS.sub("==", candidate), grammar)
            if isinstance(expr, tuple):  # only a bracketed tuple of two or more: (N, C)
                bracketed = candidate.startswith("(") and candidate.endswith(")") and len(expr) > 1
                expr = sp.Tuple(*expr) if bracketed and all(isinstance(e, sp.Basic) for e in expr) else None
        except (ReadError, TypeError, ValueError, AttributeError, SyntaxError):
            continue
        if isinstance(expr, sp.Basic) and _is_formula(expr, candidate, symbols):
            return end, expr, trailing
    return None


def _is_formula(expr: sp.Basic, candidate: str, symbols: dict[str, str]) -> bool:
    """A run worth setting as maths: an operator or call, or a name of the model (an input, a
    parameter, an axis length)."""
    if isinstance(expr, sp.Symbol):
        return expr.name in symbols
    if isinstance(expr, sp.Number) or isinstance(expr, sp.logic.boolalg.BooleanAtom):
        return False
    return bool(re.search(r"[-+*/^<>=(]", candidate))
