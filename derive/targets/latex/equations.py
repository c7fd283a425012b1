"""Displayed equations: checked, then printed as aligned rows and as a machine-readable twin.

Each ``Equation`` keeps the exact SymPy sides (for ``srepr`` and for checking) and the shown sides
(named intermediates written in, open derivatives as d/dx_k).  ``Equations.add`` checks the exact
equality, and that the shown side is the exact side with the names written in, before it returns
anything: what is printed is what was checked.  ``rows`` lays equations out for ``align``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from ...calculus.differentiate import Partial
from ...calculus.equality import check_equal
from ...calculus.indices import free_indices, index_names, readable_dummies, substitute_index
from ...model import OperatorModel, dim_of
from .layout import TEXT_WIDTH, break_lines, tex_width
from .names import Intermediates
from .printer import DerivationLatexPrinter, DisplayPartial

DEFINITION = "definition"


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

    @property
    def latex(self) -> str:
        """The whole equation on one line."""
        parts = [self.name] if self.name else []
        parts += [self.lhs_tex] if self.lhs_tex else []
        return " = ".join(parts + [" ".join(self.rhs_lines)])

    def twin(self) -> dict:
        return {"label": self.label, "kind": self.kind, "input": self.input, "latex": self.latex,
                "lhs": sp.srepr(self.lhs), "rhs": sp.srepr(self.rhs), "rules": list(self.rules), "check": self.check}


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
        self.printer = DerivationLatexPrinter(self.output_name)
        self.names = Intermediates(self.model)
        self.named = self.names.definitions()
        self.dims = self.model.dims()
        self.output_base = sp.IndexedBase(self.output_name)
        self._shown: dict[sp.Expr, sp.Expr] = {}
        self.labels = {inp.name: inp.index_of for inp in self.model.inputs
                       if getattr(inp, "domain", "real") == "index"}  # integer class-label inputs
        self.written_through: dict[str, tuple[sp.Expr, tuple]] = {}
        """x_hat (a compact form's name for a part of the output) -> (its exact definition, its indices)."""
        self.preferred: dict[sp.Expr, list[str]] = {}
        others = sorted(self.model.output.atoms(sp.Idx) - set(self.model.output_indices), key=lambda i: str(i.label))
        for idx in (*self.model.output_indices, *others):
            self.preferred.setdefault(dim_of(idx), []).append(str(idx.label))

    # display forms ---------------------------------------------------------------------------
    @property
    def output_entry(self) -> sp.Expr:
        indices = self.model.output_indices
        return self.output_base[indices] if indices else sp.Symbol(self.output_name)

    def shown(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` as displayed: open derivatives as DisplayPartial, named quantities written in,
        summation indices named like the model's indices over the same axis where that is free."""
        if expr not in self._shown:
            marked = expr.replace(lambda e: isinstance(e, Partial), lambda e: DisplayPartial(*e.args))
            named = readable_dummies(self.names.name(marked))
            self._shown[expr] = _prefer_names(named, self.preferred, {str(i.label) for i in free_indices(named)})
        return self._shown[expr]

    def unname(self, expr: sp.Expr) -> sp.Expr:
        """The exact expression a displayed one stands for (names and the output entry expanded)."""
        for name, (definition, indices) in self.written_through.items():
            expr = expr.replace(lambda e, n=name: isinstance(e, sp.Indexed) and str(e.base.label) == n,
                                lambda e, d=definition, i=indices: _at(d, i, e.indices))
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

    # checked equations ---------------------------------------------------------------------------
    def add(self, label: str, kind: str, lhs: sp.Expr, rhs: sp.Expr, *, name: str = "",
            shown_lhs: sp.Expr | None = None, shown_rhs: sp.Expr | None = None, rules: tuple[str, ...] = (),
            against: sp.Expr | None = None,
            show_lhs: bool = True, lhs_tex: str | None = None, rhs_lines: list[str] | None = None,
            input: str = "") -> Equation:
        """Check ``lhs == rhs`` (or ``against == rhs`` for a chain) and the shown sides, then keep it.

        ``kind`` DEFINITION states a definition and is not checked.  ``lhs_tex`` and ``rhs_lines``
        replace the printed sides (for notation the index printer does not produce, such as matrices).
        """
        what = f"{self.model.name}: equation {label}"
        if kind == DEFINITION:
            check = DEFINITION
        else:
            check = check_equal(against if against is not None else lhs, rhs, self.dims, what, self.labels)
        shown_lhs = self.shown(lhs) if shown_lhs is None else shown_lhs
        shown_rhs = self.shown(rhs) if shown_rhs is None else shown_rhs
        for side, exact, display in (("left", lhs, shown_lhs), ("right", rhs, shown_rhs)):
            if display is not exact and not (kind == DEFINITION and side == "left"):
                check_equal(self.unname(display), exact, self.dims, f"{what} ({side} side as displayed)", self.labels)
        if lhs_tex is None:
            lhs_tex = self.tex(shown_lhs) if show_lhs else ""
        lead = tex_width(" = ".join(p for p in (name, lhs_tex) if p)) + 1.6
        lines = rhs_lines or break_lines(self.printer, shown_rhs, max(TEXT_WIDTH - lead, 24.0))
        equation = Equation(label, kind, name, lhs, rhs, lhs_tex, tuple(lines), rules, check, input)
        self.all.append(equation)
        return equation


def _at(expr: sp.Expr, old: tuple, new: tuple) -> sp.Expr:
    for before, after in zip(old, new):
        expr = substitute_index(expr, before, after)
    return expr


def _prefer_names(expr: sp.Expr, preferred: dict[sp.Expr, list[str]], taken: set[str]) -> sp.Expr:
    """Rename each summation index to the first model index name over its axis that is free here."""
    if not expr.args or not expr.has(sp.Sum):
        return expr
    if not isinstance(expr, sp.Sum):
        return expr.func(*[_prefer_names(arg, preferred, taken) for arg in expr.args])
    body, limits, inner = expr.function, [], set(taken)
    for var, lower, upper in expr.limits:
        used = index_names(body) - {str(var.label)}
        name = next((c for c in preferred.get(dim_of(var), []) if c not in inner | used), None)
        if name is not None and name != str(var.label):
            new = sp.Idx(name, (var.lower, var.upper))
            body, var = substitute_index(body, var, new), new
        inner.add(str(var.label))
        limits.append((var, lower, upper))
    return sp.Sum(_prefer_names(body, preferred, inner), *limits)


def rows(equations: list[Equation], notes: list[str] | None = None, chained: bool = False) -> tuple[Row, ...]:
    """Aligned rows: each equation's left side before '&=', continuation lines indented.

    ``chained``: equations after the first continue the first one's left side ('&= ...').
    ``notes``: text shown above each equation (``\\shortintertext``), '' for none.
    """
    out: list[Row] = []
    for position, equation in enumerate(equations):
        left = " = ".join(p for p in (equation.name, equation.lhs_tex) if p)
        if chained and position > 0:
            left = ""
        note = notes[position] if notes else ""
        for line_number, line in enumerate(equation.rhs_lines):
            last = line_number == len(equation.rhs_lines) - 1
            right = f"= {line}" if line_number == 0 else rf"\quad {{}} {line}"
            out.append(Row(note if line_number == 0 else "", left if line_number == 0 else "", right,
                           rf"\label{{{equation.label}}}" if last else r"\notag"))
    return tuple(Row(r.intertext, r.left, r.right, r.end + ("" if i == len(out) - 1 else r" \\"))
                 for i, r in enumerate(out))
