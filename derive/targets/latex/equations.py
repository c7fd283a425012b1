"""Displayed equations: checked, then printed as aligned rows and as a machine-readable twin.

Each ``Equation`` keeps the exact SymPy sides (for ``srepr`` and for checking) and the shown sides
(named intermediates written in, open derivatives as d/dx_k).  ``Equations.add`` checks the exact
equality, and that the shown side is the exact side with the names written in, before it returns
anything: what is printed is what was checked (a result's VJP may print in the output's letters,
``output_letters``: a renaming of its indices, refused unless each keeps a letter of its own).
``rows`` lays equations out for ``align``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import sympy as sp

from ...calculus.differentiate import Partial
from ...calculus.equality import (
    CHECK_SIZES,
    RANDOM_POINTS,
    SYMBOLIC,
    UnverifiedEqualityError,
    check_equal,
    proved_by_rules,
)
from ...calculus.indices import substitute_index, substitute_indices
from ...display.catalogue import shown_names
from ...display.latex import DerivationLatexPrinter, DisplayPartial, IndexLetters
from ...display.layout import (
    INDENT,
    LEFT_WIDTH,
    MIN_WIDTH,
    RESULT_LEAD,
    RESULT_WIDTH,
    TEXT_WIDTH,
    break_lines,
    tex_width,
    text_fractions,
)
from ...display.means import stands_for, with_means
from ...display.names import Intermediates, displayed, preferred_indices
from ...model import OperatorModel, dim_of, domains

DEFINITION = "definition"
PROOF = {DEFINITION: "a definition",
         SYMBOLIC: "proven for every size by the engine's rewriting rules with the sizes symbolic (derived from "
                   "the contracted Jacobian by them, or the difference of the two sides, brought to normal form "
                   "by them, expands to zero)",
         RANDOM_POINTS: "checked equal at random points with every axis of size "
                        + ", ".join(map(str, CHECK_SIZES[:-1])) + f" and {CHECK_SIZES[-1]}"}
"""How an equation was established, by its ``check``: the twin's ``proof`` and the documents' words."""


@dataclass(frozen=True)
class Equation:
    label: str
    kind: str
    name: str
    """LaTeX of a name this equation defines (``\\bar{x}_{k}``), or ''."""
    lhs: sp.Expr
    rhs: sp.Expr
    lhs_tex: str
    rhs_lines: tuple[str, ...]
    rules: tuple[str, ...]
    check: str
    input: str = ""
    """The input this equation differentiates by, if any."""
    lhs_lines: tuple[str, ...] = ()
    """The left side broken into lines, for when it stands on lines of its own (else ``(lhs_tex,)``)."""
    width: float = TEXT_WIDTH
    """The width of a line its right side was broken to (``display.layout``)."""

    @property
    def proof(self) -> str:
        """How this equation was established, in words."""
        return PROOF[self.check]

    @property
    def left(self) -> str:
        """What stands left of the alignment: the name and left side, or only the name (or nothing)
        when that is too wide for a column, the left side then opening the right-hand lines."""
        whole = " = ".join(p for p in (self.name, self.lhs_tex) if p)
        if tex_width(whole) <= LEFT_WIDTH:
            return whole
        return self.name if tex_width(self.name) <= LEFT_WIDTH else ""

    def lines(self, continued: bool = False) -> list[tuple[str, str]]:
        """(opening, LaTeX) of each line right of the alignment: a left side that does not fit
        first (its own lines continued by an indent), then the right side ('=' before its first line,
        an indent before the others).  ``continued``: the equation continues a chain (right side only)."""
        if continued:
            return _opened("= ", self.rhs_lines)
        left, out = self.left, []
        if self.name and not left:
            out.append(("", self.name))
        if self.lhs_tex and self.lhs_tex not in left.split(" = "):
            out += _opened("= " if out or left else "", self.lhs_lines or (self.lhs_tex,))
        return out + _opened("= " if out or left else "", self.rhs_lines)

    @property
    def latex(self) -> str:
        """The whole equation on one line."""
        parts = [self.name] if self.name else []
        parts += [self.lhs_tex] if self.lhs_tex else []
        return " = ".join(parts + [" ".join(self.rhs_lines)])

    def twin(self) -> dict:
        return {"label": self.label, "kind": self.kind, "input": self.input, "latex": self.latex,
                "lhs": sp.srepr(self.lhs), "rhs": sp.srepr(self.rhs), "rules": list(self.rules), "check": self.check,
                "proof": self.proof}


@dataclass(frozen=True)
class Row:
    """One line of an ``align`` block; ``end`` holds its label or ``\\notag`` and its line break."""

    intertext: str
    left: str
    right: str
    end: str


@dataclass
class Equations:
    """Builds the checked equations of one operator document; ``all`` collects them in order."""

    model: OperatorModel
    output_name: str = "y"
    all: list[Equation] = field(default_factory=list)

    def __post_init__(self) -> None:
        reserved = {inp.name for inp in self.model.inputs} | {name for name, _ in self.model.where}
        reserved |= {str(d) for d in self.model.dims()} | {self.output_name, "e"}  # e: Euler's number
        names = shown_names(self.model.name, {str(d) for d in self.model.dims()} | {n for n, _ in self.model.where})
        self.letters = IndexLetters(reserved, names)
        self.printer = DerivationLatexPrinter(self.output_name, letters=self.letters)
        self.result_printer = DerivationLatexPrinter(self.output_name, letters=self.letters, short_sums=True)
        """The printer of a result's lines (``means``): sums over whole axes as one short sign."""
        self.names = Intermediates(self.model)
        self.named = self.names.definitions()
        self.dims = self.model.dims()
        self.output_base = sp.IndexedBase(self.output_name)
        self._shown: dict[sp.Expr, sp.Expr] = {}
        self.labels = {inp.name: inp.index_of for inp in self.model.inputs
                       if getattr(inp, "domain", "real") == "index"}  # integer class-label inputs
        self.labels.update(domains.declared(self.model))  # inputs and parameters drawn in their domains
        self.preferred = preferred_indices(self.model)
        self.indices: set[sp.Idx] = set()
        """Every index a displayed side uses (for the declared ranges)."""
        self.written_through: dict[str, tuple[sp.Expr, tuple]] = {}
        """x_hat (a compact form's name for a part of the output), a tangent of a named quantity (sigma-dot)
        or an input's VJP written in the second order -> (its definition, its indices); a definition
        may use the names written through before it."""

    # display forms ---------------------------------------------------------------------------
    @property
    def output_entry(self) -> sp.Expr:
        indices = self.model.output_indices
        return self.output_base[indices] if indices else sp.Symbol(self.output_name)

    def shown(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` as displayed: open derivatives as DisplayPartial, named quantities written in,
        summation indices named like the model's indices over the same axis where that is free."""
        if expr not in self._shown:
            self._shown[expr] = displayed(expr, self.names, self.preferred)
        return self._shown[expr]

    def unname(self, expr: sp.Expr) -> sp.Expr:
        """The exact expression a displayed one stands for (names and the output entry expanded)."""
        for _ in range(len(self.written_through)):  # a name's definition may use the names before it
            before = expr
            for name, (definition, indices) in self.written_through.items():
                expr = expr.replace(lambda e, n=name: isinstance(e, sp.Indexed) and str(e.base.label) == n,
                                    lambda e, d=definition, i=indices: substitute_indices(d, i, e.indices))
                expr = expr.xreplace({s: definition for s in expr.free_symbols
                                      if isinstance(s, sp.Symbol) and s.name == name})
            if expr == before:
                break
        expr = self.names.write_out(expr)
        expr = expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base == self.output_base,
                            lambda e: self.output_at(e.indices))
        if not self.model.output_indices:
            expr = expr.xreplace({sp.Symbol(self.output_name): self.model.output})
        return expr.replace(lambda e: isinstance(e, DisplayPartial), lambda e: Partial(*e.args))

    def output_at(self, indices: tuple[sp.Expr, ...]) -> sp.Expr:
        """The output entry at other indices (y_k for y_i)."""
        expr = self.model.output
        for old, new in zip(self.model.output_indices, indices):
            expr = substitute_index(expr, old, new)
        return expr

    def tex(self, expr: sp.Expr) -> str:
        """``expr`` in LaTeX, exactly as given (no names written in)."""
        return self.printer.doprint(expr)

    @contextmanager
    def output_letters(self, indices: tuple[sp.Idx, ...], *shown: sp.Expr) -> Iterator[None]:
        """Within: ``indices`` (an input's entry) printed as the output's letters over the same axes,
        as a paper writes a VJP (x̄_{bgcs} beside y_{bgcs}); the other indices of the ``shown``
        expressions keep their letters, or take other letters of their axes where those clash."""
        outputs, pairs = list(self.model.output_indices), []
        for idx in indices:
            match = next((o for o in outputs if dim_of(o) == dim_of(idx)), None)
            if match is not None:
                outputs.remove(match)
                pairs.append((idx, match))
        present = set().union(*(e.atoms(sp.Idx) for e in shown if isinstance(e, sp.Basic)))
        with self.letters.as_letters(pairs, present):
            yield

    # checked equations ---------------------------------------------------------------------------
    def add(self, label: str, kind: str, lhs: sp.Expr, rhs: sp.Expr, *, name: str = "",
            shown_lhs: sp.Expr | None = None, shown_rhs: sp.Expr | None = None, rules: tuple[str, ...] = (),
            against: sp.Expr | None = None,
            show_lhs: bool = True, lhs_tex: str | None = None, rhs_lines: list[str] | None = None,
            input: str = "", by_rules: bool = False, derived: bool = False, means: bool = False) -> Equation:
        """Check ``lhs == rhs`` (or ``against == rhs`` for a chain) and the shown sides, then keep it.

        ``kind`` DEFINITION states a definition and is not checked.  ``lhs_tex`` and ``rhs_lines``
        replace the printed sides (for notation the index printer does not produce, such as matrices).
        ``by_rules``: first try to prove the equality for every size by the engine's rewriting rules.
        ``derived``: ``rhs`` was derived from ``against`` by the engine's rewriting rules (the
        contraction and ``compact``'s chain, each step an identity for symbolic sizes, and checked at
        random points as it was made): proven for every size, with no work redone.
        ``means``: print each sum divided by its count as a mean (``display.means``; a result's compact form).
        """
        what = f"{self.model.name}: equation {label}"
        if kind == DEFINITION:
            check = DEFINITION
        elif derived:
            check = SYMBOLIC
        elif by_rules and proved_by_rules(against if against is not None else lhs, rhs):
            check = SYMBOLIC
        else:
            check = check_equal(against if against is not None else lhs, rhs, self.dims, what, self.labels)
        shown_lhs = self.shown(lhs) if shown_lhs is None else shown_lhs
        shown_rhs = self.shown(rhs) if shown_rhs is None else shown_rhs
        for side, exact, display in (("left", lhs, shown_lhs), ("right", rhs, shown_rhs)):
            if display is not exact and not (kind == DEFINITION and side == "left"):
                check_equal(self.unname(display), exact, self.dims, f"{what} ({side} side as displayed)", self.labels)
        self.indices.update(*(side.atoms(sp.Idx) for side in (shown_lhs, shown_rhs) if isinstance(side, sp.Basic)))
        if lhs_tex is None:
            lhs_tex = self.tex(shown_lhs) if show_lhs else ""
        whole = " = ".join(p for p in (name, lhs_tex) if p)
        lead = (tex_width(whole) if tex_width(whole) <= LEFT_WIDTH else
                tex_width(name) if tex_width(name) <= LEFT_WIDTH else 0.0) + 1.6
        printed = with_means(shown_rhs, {d for d in self.dims if isinstance(d, sp.Symbol)}) if means else shown_rhs
        if printed is not shown_rhs and not stands_for(printed, shown_rhs):
            raise UnverifiedEqualityError(f"{what}: the means printed are not the sums they stand for")
        plain = means and isinstance(printed, sp.Basic) and not printed.has(sp.exp)
        width = RESULT_WIDTH if plain else TEXT_WIDTH  # a result of means and products: the calibrated width
        if plain:  # an align block's right sides start after its widest left side (a result's: y-dot^(x)_{ij})
            lead = max(lead, RESULT_LEAD)
        printer = self.result_printer if means else self.printer
        lines = rhs_lines or break_lines(printer, printed, max(width - lead - INDENT, MIN_WIDTH))
        if means:  # a result's short fractions at text size: each line the height of a text line
            lines = [text_fractions(line) for line in lines]
        lhs_lines: tuple[str, ...] = ()
        printed_lhs = isinstance(shown_lhs, sp.Basic) and lhs_tex == self.tex(shown_lhs)
        if tex_width(lhs_tex) > TEXT_WIDTH - lead and printed_lhs:
            lhs_lines = tuple(break_lines(self.printer, shown_lhs, TEXT_WIDTH - INDENT - 1.6))
        equation = Equation(label, kind, name, lhs, rhs, lhs_tex, tuple(lines), rules, check, input, lhs_lines, width)
        self.all.append(equation)
        return equation


def _opened(first: str, lines: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(first if number == 0 else r"\quad {} ", line) for number, line in enumerate(lines)]


def rows(equations: list[Equation], notes: list[str] | None = None, chained: bool = False) -> tuple[Row, ...]:
    """Aligned rows: each equation's left side before '&=', continuation lines indented.

    ``chained``: equations after the first continue the first one's left side ('&= ...').
    ``notes``: text shown above each equation (``\\shortintertext``), '' for none.
    """
    out: list[Row] = []
    for position, equation in enumerate(equations):
        continued = chained and position > 0
        left = "" if continued else equation.left
        note = notes[position] if notes else ""
        lines = equation.lines(continued)
        for line_number, (opening, line) in enumerate(lines):
            last = line_number == len(lines) - 1
            right = opening + line
            out.append(Row(note if line_number == 0 else "", left if line_number == 0 else "", right,
                           rf"\label{{{equation.label}}}" if last else r"\notag"))
    return tuple(Row(r.intertext, r.left, r.right, r.end + ("" if i == len(out) - 1 else r" \\"))
                 for i, r in enumerate(out))
