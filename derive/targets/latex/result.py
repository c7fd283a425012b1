"""The result a document opens with: each VJP and JVP in its compact form, checked like every equation.

The compact forms come from ``calculus/compact.py`` (written through x_hat or the output y and the
model's named quantities).  Each is added as an equation whose exact side is the form written out,
checked against the contraction of the derivative, and whose shown side uses the names; x_hat gets
a definition row of its own, and ``Equations.unname`` writes it out when the shown side is checked.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from ...calculus.compact import HAT, OUTPUT, Compact, expand_named
from ...calculus.pipeline import COTANGENT, Derivation, tangent_name
from .equations import DEFINITION, Equation, Equations, Row, rows
from .text import label_part


SHOWN_HAT = "xhat"
"""x_hat as the documents name it (the LaTeX printer writes it \\hat{x})."""


def result_rows(eqs: Equations, derivation: Derivation,
                forms: Callable[[str, str], Compact] | None = None) -> tuple[Row, ...]:
    """A definition of x_hat where a form uses it, then the compact VJP and JVP of every input
    (``forms(input, kind)``: which form to show; default the compact one)."""
    forms = forms or derivation.compact
    from .view import _output_tangent, _subscript, _summed

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
                                         shown_rhs=eqs.shown(_shown(eqs, form.definition))))
    for gradient in derivation.gradients:
        name, out, wrt = gradient.input.name, model.output_indices, gradient.wrt_indices
        weight = sp.IndexedBase(COTANGENT)[out] if out else sp.Symbol(COTANGENT)
        tangent = sp.IndexedBase(tangent_name(name))[wrt] if wrt else sp.Symbol(tangent_name(name))
        bar = rf"\bar{{{eqs.printer.base_name(name)}}}" + _subscript(eqs, wrt)
        for kind, contraction, title in (("vjp", _summed(weight * gradient.steps[0].expr, out), bar),
                                         ("jvp", _summed(gradient.steps[0].expr * tangent, wrt),
                                          _output_tangent(eqs, name if len(derivation.gradients) > 1 else None))):
            form = forms(name, kind)
            equations.append(eqs.add(f"eq:{op}:result-{kind}-{label_part(name)}", kind, contraction, form.written,
                                     name=title, show_lhs=False, shown_rhs=eqs.shown(_shown(eqs, form.expr)),
                                     input=name))
    return rows(equations)


def _shown(eqs: Equations, expr: sp.Expr) -> sp.Expr:
    """A compact form with the document's names: mu_p for the placeholder mu[p], y for the output."""
    quantities = {q.name: q for q in eqs.names.all}

    mapping = {}
    for entry in expr.atoms(sp.Indexed):
        label = str(entry.base.label)
        if label in quantities:
            mapping[entry] = quantities[label].at(tuple(entry.indices))
        elif label == OUTPUT:
            mapping[entry] = eqs.output_base[entry.indices]
        elif label == HAT:
            mapping[entry] = sp.IndexedBase(SHOWN_HAT)[entry.indices]
    for symbol in expr.free_symbols:
        if isinstance(symbol, sp.Symbol) and str(symbol) in quantities and not quantities[str(symbol)].indices:
            mapping[symbol] = quantities[str(symbol)].at(())
    return expr.xreplace(mapping)
