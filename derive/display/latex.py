"""LaTeX for derived index expressions: x_{ik}, \\gamma_{i}, \\sum_{j=1}^{n}, \\delta_{ik}, \\bar{y}, \\dot{x}.

The model's indices run over 0..n-1; every index position is printed 1-based (x[0] -> x_1, a sum
over 0..n-1 -> \\sum_{j=1}^{n}), and an index letter always stands for its 1-based position, so
x[i + 1] prints as x_{i + 1} and a comparison of indices reads the same either way.  The
cotangent ``dy`` prints as \\bar{y} and a tangent ``dot_x`` as \\dot{x}.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE

from ..calculus.indices import free_indices
from ..calculus.pipeline import COTANGENT
from ..model import dim_of
from .means import Mean
from .notation import DisplayPartial, function_symbol, latex_symbol, tangent_of


class _Letter(sp.Symbol):
    """An index already printed (its LaTeX is its name), standing for its 1-based position."""

    is_integer = True


VJP_PREFIX = "bar:"
"""``bar:x`` names the VJP of input x where an expression uses it (no model name has a colon)."""

INDEX_LETTERS = "ijklmpqrstuvwabcfgh"
"""The letters an index may be shown as when its own name is taken (by another axis or another meaning)."""


class IndexLetters:
    """One letter, one axis: within a document, each index name over one axis is shown as one letter,
    and no letter stands for indices over two axes or for anything else (``reserved``: the inputs, the
    named quantities, the sizes, Euler's e).  An index keeps its own name where that is free."""

    def __init__(self, reserved: set[str], names: dict[str, str] | None = None) -> None:
        self.names = dict(names or {})
        """The model's names of sizes and named quantities shown as the catalogue's letters (``S`` -> ``Z``)."""
        self.reserved = set(reserved) | set(self.names.values())
        self.shown: dict[tuple[str, sp.Expr, sp.Expr], str] = {}
        self.owner: dict[str, tuple[str, sp.Expr]] = {}
        """The index name and axis each letter shown so far stands for."""

        self.scoped: dict[tuple[str, sp.Expr, sp.Expr], str] = {}
        """Letters shown in place of the usual ones within ``as_letters``."""

    def letter(self, idx: sp.Idx) -> str:
        key = _key(idx)
        if key in self.scoped:
            return self.scoped[key]
        if key not in self.shown:
            owner = (key[0], dim_of(idx))
            candidates = (key[0], *INDEX_LETTERS, *(f"{c}'" for c in INDEX_LETTERS))
            letter = next(c for c in candidates if c not in self.reserved and self.owner.get(c, owner) == owner)
            self.shown[key], self.owner[letter] = letter, owner
        return self.shown[key]

    @contextmanager
    def as_letters(self, pairs: Iterable[tuple[sp.Idx, sp.Idx]], present: Iterable[sp.Idx]) -> Iterator[None]:
        """Within: the first index of each pair shown as the second's letter (an input's VJP written
        with the output's letters, x̄_{bgcs} rather than x̄_{kpqh}: same axes); an index ``present``
        whose letter that takes is shown as another letter of its axis, one the document already
        uses where one is free.  Display only: the equations and their checks keep the indices."""
        scoped = {_key(old): self.letter(new) for old, new in pairs if dim_of(old) == dim_of(new)}
        others = sorted({i for i in present if _key(i) not in scoped}, key=str)
        taken = set(scoped.values()) | {self.letter(i) for i in others} | {self.letter(old) for old, _ in pairs}
        for idx in others:
            if self.letter(idx) in scoped.values():
                scoped[_key(idx)] = letter = self._free_letter(idx, taken)
                taken.add(letter)
        self.scoped = scoped
        shown = {i: self.letter(i) for i in {*present, *(old for old, _ in pairs)}}
        if len(set(shown.values())) < len(shown):  # a renaming that is no renaming: refused, never printed
            self.scoped = {}
            raise ValueError(f"index letters {shown} would show two indices as one letter")
        try:
            yield
        finally:
            self.scoped = {}

    def _free_letter(self, idx: sp.Idx, taken: set[str]) -> str:
        """A letter of ``idx``'s axis not in ``taken``: one already shown for that axis, else a new one."""
        axis = dim_of(idx)
        used = [c for c, (_, dim) in self.owner.items() if dim == axis and c not in taken]
        if used:
            return used[0]
        owner = (f"{idx.label}~", axis)
        letter = next(c for c in (*INDEX_LETTERS, *(f"{c}'" for c in INDEX_LETTERS))
                      if c not in self.reserved and c not in taken and c not in self.owner)
        self.owner[letter] = owner
        return letter


def _key(idx: sp.Idx) -> tuple[str, sp.Expr, sp.Expr]:
    return (str(idx.label), idx.lower, idx.upper)


class DerivationLatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer with readable index notation; ``output`` names the operator's output;
    ``letters``: how a document shows its indices (each index name as itself without)."""

    def __init__(self, output: str = "y", settings: dict | None = None, letters: IndexLetters | None = None,
                 short_sums: bool = False) -> None:
        super().__init__({"long_frac_ratio": 2, **(settings or {})})
        self.output = output
        self.letters = letters
        self.short_sums = short_sums
        """A sum over whole axes as one text-size sign with its indices beside it: a result's."""

    def index_name(self, idx: sp.Idx) -> str:
        return self.letters.letter(idx) if self.letters is not None else str(idx.label)

    # indices -------------------------------------------------------------------------------
    def index_text(self, position: sp.Expr) -> str:
        """An index position printed 1-based: letters stand for themselves, constants shift by one.

        An entry of an integer input used as a position (a class label ``target[b]``) is an index
        too, and stands for itself like a letter.
        """
        if isinstance(position, (sp.Idx, sp.Indexed)):
            return self._print(position)
        letters = {e: _Letter(self._print(e)) - 1 for e in position.atoms(sp.Indexed)}
        position = position.xreplace(letters)
        position = position.xreplace({i: _Letter(self._print(i)) - 1 for i in position.atoms(sp.Idx)})
        return self._print(position + 1)

    def subscript(self, positions) -> str:
        texts = [self.index_text(p) for p in positions]
        joiner = "" if all(len(t) == 1 and t.isalpha() for t in texts) else ","
        return joiner.join(texts)

    def _print_Idx(self, expr: sp.Idx) -> str:
        return self._print(sp.Symbol(self.index_name(expr), integer=True))

    def _print__Letter(self, expr: sp.Symbol) -> str:
        return expr.name

    def base_name(self, name: str) -> str:
        if name.startswith(VJP_PREFIX):  # an input's VJP named in the second order: x-bar
            return rf"\bar{{{self.base_name(name[len(VJP_PREFIX):])}}}"
        if name == COTANGENT:
            return rf"\bar{{{self._print(sp.Symbol(self.output))}}}"
        if tangent_of(name):
            return rf"\dot{{{self._print(sp.Symbol(tangent_of(name)))}}}"
        return self._print(sp.Symbol(name))

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        base = self.base_name(str(expr.base))
        if "_" in base or "^" in base:
            base = "{" + base + "}"
        return f"{base}_{{{self.subscript(expr.indices)}}}"

    def _print_IndexedBase(self, expr: sp.IndexedBase) -> str:
        return self.base_name(str(expr))

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        if expr.name == COTANGENT or tangent_of(expr.name) or expr.name.startswith(VJP_PREFIX):
            return self.base_name(expr.name)
        if self.letters is not None and expr.name in self.letters.names:
            expr = sp.Symbol(self.letters.names[expr.name])
        symbol = latex_symbol(expr.name)
        if symbol:
            return symbol
        tex = super()._print_Symbol(expr, style)
        return rf"\mathrm{{{tex}}}" if re.fullmatch(r"[A-Za-z]{2,}", tex) else tex  # a word, not a product

    def _print_Function(self, expr: sp.Function, exp: object = None) -> str:
        """A function the notation shows by a symbol (a model's own ``logistic``) as that symbol."""
        symbol = function_symbol(type(expr).__name__, latex=True)
        if symbol is None or len(expr.args) != 1:
            return super()._print_Function(expr, exp)
        tex = rf"{symbol}\left({self._print(expr.args[0])}\right)"
        return tex if exp is None else rf"{tex}^{{{exp}}}"

    def _print_KroneckerDelta(self, expr: sp.KroneckerDelta, exp: object = None) -> str:
        tex = rf"\delta_{{{self.subscript(expr.args)}}}"
        return tex if exp is None else rf"{tex}^{{{exp}}}"

    # sums and derivatives -------------------------------------------------------------------
    def sum_signs(self, expr: sp.Sum) -> str:
        """The summation signs of ``expr`` (outermost first), without the summand; with ``short_sums``,
        one sign for sums over whole axes, its indices beside it."""
        if self.short_sums and all(lower == var.lower and upper == var.upper for var, lower, upper in expr.limits):
            under = ",".join(self._print(sp.Symbol(self.index_name(var), integer=True))
                             for var, _, _ in reversed(expr.limits))
            return rf"\mathop{{\textstyle\sum}}\nolimits_{{{under}}} "
        return "".join(
            rf"\sum_{{{self._print(sp.Symbol(self.index_name(var), integer=True))}={self.index_text(lower)}}}"
            rf"^{{{self.index_text(upper)}}} "
            for var, lower, upper in reversed(expr.limits))

    def _print_Sum(self, expr: sp.Sum) -> str:
        signs = self.sum_signs(expr)
        body = expr.function
        if isinstance(body, sp.Add) or body.could_extract_minus_sign():
            return signs + rf"\left({self._print(body)}\right)"
        return signs + self.parenthesize(body, PRECEDENCE["Mul"], strict=True)

    def _print_Mean(self, expr: Mean) -> str:
        r"""\langle f \rangle_{i}: the mean of f over the indices under it."""
        under = "".join(self._print(sp.Symbol(self.index_name(var), integer=True)) for var, _, _ in expr.limits)
        return rf"\langle {self._print(expr.function)} \rangle_{{{under}}}"

    def _print_DisplayPartial(self, expr: DisplayPartial) -> str:
        inner, wrt = expr.args
        by = rf"\partial {self._print(wrt)}"
        if isinstance(inner, (sp.Indexed, sp.Symbol)):
            return rf"\frac{{\partial {self._print(inner)}}}{{{by}}}"
        return rf"\frac{{\partial}}{{{by}}}\left({self._print(inner)}\right)"

    def _print_Partial(self, expr: sp.Expr) -> str:
        return self._print_DisplayPartial(DisplayPartial(*expr.args))

    def _print_Mul(self, expr: sp.Expr) -> str:
        """Sums and open derivatives act on what follows: print them after the other factors.

        SymPy also prints a reciprocal 1/x through here (``expr`` a Pow): that is left to SymPy.
        """
        trailing = [f for f in expr.args if isinstance(f, (sp.Sum, DisplayPartial, Mean))] if expr.is_Mul else []
        if not trailing:
            return super()._print_Mul(expr)
        rest = sp.Mul(*[f for f in expr.args if f not in trailing])
        texts = [self._print(f) for f in trailing]
        texts = [rf"\left({t}\right)" if isinstance(f, sp.Sum) else t
                 for f, t in zip(trailing[:-1], texts[:-1])] + texts[-1:]
        if rest == 1:
            return " ".join(texts)
        if rest == -1:
            return "- " + " ".join(texts)
        head = self.parenthesize(rest, PRECEDENCE["Mul"]) if isinstance(rest, sp.Add) else self._print(rest)
        return " ".join([head, *texts])

    # sums of terms ---------------------------------------------------------------------------
    def ordered_terms(self, expr: sp.Expr) -> list[tuple[str, sp.Expr]]:
        """(sign, term without its sign) of each term of ``expr``; the first positive term leads."""
        terms = list(self._as_ordered_terms(expr, order=None)) if isinstance(expr, sp.Add) else [expr]
        leading = next((t for t in terms if not t.could_extract_minus_sign()), None)
        if leading is not None and leading is not terms[0]:
            terms.remove(leading)
            terms.insert(0, leading)
        return [("-", -t) if t.could_extract_minus_sign() else ("+", t) for t in terms]

    def term_tex(self, term: sp.Expr) -> str:
        tex = self._print(term)
        return rf"\left({tex}\right)" if self._needs_add_brackets(term) else tex

    def signed_terms(self, expr: sp.Expr) -> list[tuple[str, str]]:
        """(sign, LaTeX) of each term of ``expr`` in print order."""
        return [(sign, self.term_tex(term)) for sign, term in self.ordered_terms(expr)]

    def _print_Add(self, expr: sp.Add, order: str | None = None) -> str:
        return join_terms(self.signed_terms(expr))


def join_terms(terms: list[tuple[str, str]], leading: bool = False) -> str:
    """LaTeX of signed terms joined; ``leading`` keeps a '+' in front of the first term."""
    tex = ""
    for position, (sign, term) in enumerate(terms):
        if position == 0 and not leading:
            tex += ("-" if sign == "-" else "") + term
        else:
            tex += f" {sign} {term}"
    return tex.strip()


class NotAVectorError(ValueError):
    """An entry expression that has no clean whole-vector notation."""


class VectorLatexPrinter(DerivationLatexPrinter):
    """Entries u_i over one free index printed as the vector u: x_i -> \\mathbf{x}, a_i b_i -> a \\odot b.

    Functions apply entrywise; an index-free term of a sum is a multiple of the all-ones vector.
    """

    def __init__(self, index: sp.Idx, output: str = "y", settings: dict | None = None,
                 letters: IndexLetters | None = None) -> None:
        super().__init__(output, settings, letters)
        self.index = index

    def is_vector(self, expr: sp.Expr) -> bool:
        return self.index in free_indices(expr)

    def bold(self, name: str) -> str:
        return rf"\boldsymbol{{{name}}}" if name.startswith("\\") else rf"\mathbf{{{name}}}"

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        if tuple(expr.indices) != (self.index,):
            raise NotAVectorError(f"{expr} is not indexed by {self.index} alone")
        return self.bold(self.base_name(str(expr.base)))

    def _print_Sum(self, expr: sp.Sum) -> str:
        if self.is_vector(expr):
            raise NotAVectorError(f"a sum with a free {self.index}: {expr}")
        return DerivationLatexPrinter(self.output, letters=self.letters)._print_Sum(expr)

    def _print_Idx(self, expr: sp.Idx) -> str:
        raise NotAVectorError(f"the index {expr} used as a value")

    def _print_KroneckerDelta(self, expr: sp.KroneckerDelta, exp: object = None) -> str:
        raise NotAVectorError("a Kronecker delta inside a vector")

    def _print_Pow(self, expr: sp.Pow) -> str:
        if self.is_vector(expr.base):
            if not (expr.exp.is_Integer and expr.exp > 0):
                raise NotAVectorError(f"an entrywise power {expr}")
            return rf"{self.parenthesize(expr.base, PRECEDENCE['Atom'])}^{{\odot {expr.exp}}}"
        return super()._print_Pow(expr)

    def _print_Mul(self, expr: sp.Expr) -> str:
        if not expr.is_Mul:  # a reciprocal 1/v, printed by SymPy through _print_Mul
            if self.is_vector(expr):
                raise NotAVectorError(f"an entrywise reciprocal {expr}")
            return super()._print_Mul(expr)
        vectors = sorted((f for f in expr.args if self.is_vector(f)), key=lambda f: isinstance(f, sp.Add))
        if len(vectors) < 2:
            return super()._print_Mul(expr)
        scalar = sp.Mul(*[f for f in expr.args if not self.is_vector(f)])
        product = r" \odot ".join(self.parenthesize(v, PRECEDENCE["Mul"], strict=True) for v in vectors)
        if scalar == 1:
            return product
        if scalar == -1:
            return "- " + product
        return f"{self.parenthesize(scalar, PRECEDENCE['Mul'])} {product}"

    def _print_Add(self, expr: sp.Add, order: str | None = None) -> str:
        if not self.is_vector(expr):
            return super()._print_Add(expr)
        terms = []
        for sign, term in self.ordered_terms(expr):
            tex = self.term_tex(term)
            if not self.is_vector(term):
                tex = self.bold("1") if term == 1 else f"{tex} {self.bold('1')}"
            terms.append((sign, tex))
        return join_terms(terms)

    def _print_Function(self, expr: sp.Function, exp: object = None) -> str:
        for arg in expr.args:
            if self.is_vector(arg) and len(expr.args) > 1:
                raise NotAVectorError(f"{expr.func} of several arguments")
        return super()._print_Function(expr, exp)
