"""The numerically stable form the kernel uses, and why: checked shift invariance and model notes."""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..calculus.equality import check_equal
from ..calculus.pipeline import Derivation
from .latex_equations import Equations, Row, rows
from .latex_text import label_part, tex_escape

SHIFT = sp.Symbol("c", real=True)


@dataclass(frozen=True)
class StableView:
    rows: tuple[Row, ...]
    text: str
    notes: tuple[str, ...]


def shifted(expr: sp.Expr, input_name: str) -> sp.Expr:
    """``expr`` with every entry of the input moved by the same amount c."""
    return expr.replace(lambda e: isinstance(e, sp.Indexed) and str(e.base) == input_name, lambda e: e - SHIFT)


def stable_form(eqs: Equations, derivation: Derivation) -> StableView | None:
    """The stable-form section, or None when the model declares no shift invariance and no notes."""
    model = derivation.model
    if not model.shift_invariant and not model.notes:
        return None
    equations, sentences = [], []
    for name in model.shift_invariant:
        label = f"eq:{label_part(model.name)}:stable-{label_part(name)}"
        equations.append(eqs.add(label, "stable", shifted(model.output, name), model.output))
        for gradient in derivation.gradients:
            for kind, expr in (("VJP", gradient.vjp), ("JVP", gradient.jvp)):
                check_equal(shifted(expr, name), expr, eqs.dims,
                            f"{model.name}: the {kind} for {gradient.input.name} under a shift of {name}")
        symbol = eqs.printer.base_name(name)
        sentences.append(
            f"The output does not change when every entry of ${symbol}$ moves by the same $c$, as "
            f"\\eqref{{{label}}} shows, and neither do the VJP and JVP above (checked the same way). "
            f"The kernel therefore subtracts the largest entry, $c = \\max {symbol}$, before it evaluates "
            f"the forward pass, the VJP and the JVP: every value is unchanged, and no shifted entry "
            f"exceeds 0.")
    return StableView(rows(equations), " ".join(sentences), tuple(tex_escape(note) for note in model.notes))
