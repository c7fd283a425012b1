"""The result a document opens with: each VJP and JVP in its compact form, checked like every equation.

The compact forms come from ``calculus/compact.py`` (written through x_hat or the output y and the
model's named quantities).  Each is added as an equation whose exact side is the form written out,
checked against the contraction of the derivative, and whose shown side uses the names; x_hat gets
a definition row of its own, and ``Equations.unname`` writes it out when the shown side is checked.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from ...calculus.compact import HAT, Compact, expand_named
from ...calculus.pipeline import COTANGENT, Derivation, tangent_name
from .equations import DEFINITION, Equation, Equations, Row, rows
from .symbols import SHOWN_HAT, output_tangent, shown, subscript, summed
from .text import label_part


def result_rows(eqs: Equations, derivation: Derivation,
                forms: Callable[[str, str], Compact] | None = None) -> tuple[Row, ...]:
    """A definition of x_hat where a form uses it, then the compact VJP and JVP of every input
    (``forms(input, kind)``: which form to show; default the compact one)."""
    forms = forms or derivation.compact
    model, op = eqs.model, label_part(eqs.model.name)
    equations: list[Equation] = []
    for gradient in derivation.gradients:
        for kind in ("vjp", "jvp"):
            form = forms(gradient.input.name, kind)
            if form.through == HAT and SHOWN_HAT not in eqs.written_through:
                exact = expand_named(form.definition, derivation.rewriter.named)
                eqs.written_through[SHOWN_HAT] = (exact, tuple(model.output_indices))
                entry = sp.IndexedBase(SHOWN_HAT)[tuple(model.output_indices)]
                equations.append(eqs.add(f"eq:{op}:where-x-hat", DEFINITION, entry, exact, shown_lhs=entry,
                                         shown_rhs=eqs.shown(shown(eqs, form.definition))))
    for gradient in derivation.gradients:
        name, out, wrt = gradient.input.name, model.output_indices, gradient.wrt_indices
        weight = sp.IndexedBase(COTANGENT)[out] if out else sp.Symbol(COTANGENT)
        tangent = sp.IndexedBase(tangent_name(name))[wrt] if wrt else sp.Symbol(tangent_name(name))
        bar = rf"\bar{{{eqs.printer.base_name(name)}}}" + subscript(eqs, wrt)
        for kind, contraction, title in (("vjp", summed(weight * gradient.steps[0].expr, out), bar),
                                         ("jvp", summed(gradient.steps[0].expr * tangent, wrt),
                                          output_tangent(eqs, name if len(derivation.gradients) > 1 else None))):
            form = forms(name, kind)
            equations.append(eqs.add(f"eq:{op}:result-{kind}-{label_part(name)}", kind, contraction, form.written,
                                     name=title, show_lhs=False, shown_rhs=eqs.shown(shown(eqs, form.expr)),
                                     input=name))
    return rows(equations)
