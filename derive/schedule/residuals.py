"""The residuals a kernel's forward saves for its backward, chosen from the compact forms.

A compact form (``derive.calculus.compact``) writes a vjp or jvp through the model's named
quantities (the per-row mean, sigma, rms, a softmax's sum) and x_hat or the output y.  With x_hat
written back as its definition (``(x - mu)/sigma``), what a form reads besides the inputs is the
cheapest set to save: per-row statistics (O(rows)), or the output y where the form is in y.  The
saved set is the union over every gradient's vjp and jvp; a form that reads none falls back to
the inputs (recomputed).  vjp_jvp reads them too, one form per second-order term (input a along
input b's tangent: the compact vjp_jvp of a with every other tangent zero), where that term's form
reads only residuals the vjp and jvp already save.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from ..calculus.compact import HAT, OUTPUT, expand_named
from ..calculus.indices import substitute_index
from ..calculus.pipeline import Derivation, tangent_name
from ..model import dim_of

KINDS = ("vjp", "jvp")
"""The kernel functions whose reads choose the residuals (vjp_jvp reads what they save)."""


@dataclass(frozen=True)
class Saved:
    """One residual: its name, the core axes it spans (frame symbols), its definition in the inputs."""

    name: str
    dims: tuple[sp.Expr, ...]
    definition: sp.Expr


@dataclass(frozen=True)
class Saving:
    """The residuals a kernel saves, and each (input, kind)'s form reading them (absent: recomputed);
    a vjp_jvp term's kind is ``second_kind(by)``."""

    saved: tuple[Saved, ...]
    forms: dict[tuple[str, str], sp.Expr] = field(default_factory=dict)

    @property
    def reads_second(self) -> bool:
        """Whether a vjp_jvp term has a form reading the residuals."""
        return any(kind.startswith(second_kind("")) for _, kind in self.forms)

    def second(self, input_name: str, by: str) -> sp.Expr | None:
        """The form of vjp_jvp's term by ``input_name`` along ``by``'s tangent reading the residuals, or None."""
        return self.forms.get((input_name, second_kind(by)))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.saved)

    def statistics(self) -> tuple[Saved, ...]:
        """The saved values other than the output (what a forward computes besides y)."""
        return tuple(s for s in self.saved if s.name != OUTPUT)


def saving(derivation: Derivation) -> Saving | None:
    """The residuals of ``derivation``'s kernels, or None when no compact form reads any."""
    rewriter = derivation.rewriter
    if not rewriter.substitutions:
        return None
    named = {q.name: q for q in rewriter.named}
    forms: dict[tuple[str, str], sp.Expr] = {}
    used: set[str] = set()
    for gradient in derivation.gradients:
        for kind in KINDS:
            form = derivation.compact(gradient.input.name, kind)
            expr = _hat_written(form.expr, rewriter.substitutions)
            reads = _placeholders(expr, named) | ({OUTPUT} if _reads(expr, OUTPUT) else set())
            if reads:
                forms[(gradient.input.name, kind)] = expr
                used |= reads
    if not used:
        return None
    forms.update(_second_forms(derivation, named, used))
    model = derivation.model
    saved = [Saved(OUTPUT, model.output_dims, model.output)] if OUTPUT in used else []
    for quantity in rewriter.named:
        if quantity.name in used:
            dims = tuple(dim_of(i) for i in quantity.free)
            saved.append(Saved(quantity.name, dims, expand_named(quantity.at(quantity.free), rewriter.named)))
    return Saving(tuple(saved), forms)


def second_kind(by: str) -> str:
    """The key of a vjp_jvp term along input ``by``'s tangent in ``Saving.forms``."""
    return f"vjp_jvp/{by}"


def _second_forms(derivation: Derivation, named: dict, used: set[str]) -> dict[tuple[str, str], sp.Expr]:
    """Each vjp_jvp term's form reading residuals among ``used``: the compact vjp_jvp of its input
    (linear in the tangents) with every tangent but the term's own zero."""
    rewriter = derivation.rewriter
    forms = {}
    for gradient in derivation.gradients:
        form = derivation.compact(gradient.input.name, "vjp_jvp")
        if form.through is None:
            continue
        whole = _hat_written(form.expr, rewriter.substitutions)
        tangents = {tangent_name(t.by.name): t.by.name for t in derivation.second_order(gradient.input.name)}
        for tangent, by in tangents.items():
            expr = _only(whole, tangent, set(tangents))
            reads = _placeholders(expr, named) | ({OUTPUT} if _reads(expr, OUTPUT) else set())
            if reads and reads <= used:
                forms[(gradient.input.name, second_kind(by))] = expr
    return forms


def _only(expr: sp.Expr, tangent: str, tangents: set[str]) -> sp.Expr:
    """``expr`` with every tangent's entries but ``tangent``'s zero (a sum of zero: zero)."""
    others = tangents - {tangent}
    return expr.replace(
        lambda e: (isinstance(e, sp.Indexed) and str(e.base) in others) or (isinstance(e, sp.Sum) and e.function == 0),
        lambda e: sp.S.Zero)


def _hat_written(expr: sp.Expr, substitutions) -> sp.Expr:
    """``expr`` with every x_hat entry written as its definition (placeholders kept)."""
    for _, inverse, through, indices in substitutions:
        if not _reads(inverse, HAT):
            continue

        def at(entry: sp.Indexed, through=through, indices=indices) -> sp.Expr:
            value = through
            for old, new in zip(indices, entry.indices):
                value = substitute_index(value, old, new)
            return value

        expr = expr.replace(lambda e: isinstance(e, sp.Indexed) and str(e.base) == HAT, at)
    return expr


def _reads(expr: sp.Expr, name: str) -> bool:
    return any(str(a.base) == name for a in expr.atoms(sp.Indexed))


def _placeholders(expr: sp.Expr, named: dict) -> set[str]:
    found = {str(s) for s in expr.atoms(sp.Symbol)} | {str(a.base) for a in expr.atoms(sp.Indexed)}
    return found & set(named)
