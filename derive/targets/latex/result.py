"""The results a document opens with, and the fragment ``<op>-result.tex`` holds: the compact VJP and
JVP of every input, the Jacobian's matrix form, the second order, the assumptions, and how each
equation was established.

The compact forms come from ``calculus/compact.py`` (written through x_hat or the output y and the
model's named quantities).  Each is added as an equation whose exact side is the form written out,
first proved equal for every size to the contraction of the derived Jacobian by the engine's
rewriting rules, else checked at random points; its shown side uses the names.  x_hat gets a
definition row of its own, and ``Equations.unname`` writes it out when the shown side is checked.
Added before every derivation step, the result equations keep their labels and numbers whatever
the steps become.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

from ...calculus.compact import HAT, Compact, expand_named
from ...calculus.equality import CHECK_SIZES, RANDOM_POINTS, SYMBOLIC
from ...calculus.pipeline import COTANGENT, Derivation, tangent_name
from .equations import DEFINITION, Equation, Equations, Row, rows
from .maths_text import maths_text
from .matrix_section import matrix_rows
from .second import fits_column, second_results
from .symbols import SHOWN_HAT, output_tangent, shown, subscript, summed
from .tangent_form import jvp_through_hat
from .text import label_part, tex_escape
from .weights import WEIGHT, WEIGHT_BAR, Weights, softmax_weights, through_weights, weight_at, weight_bar_at

DERIVED_BY = ("contract", "compact")
"""The rules a result is derived by from the contracted Jacobian (its ``rules`` in the twin)."""
RESULT_KINDS = ("vjp", "jvp", "matrix", "tangent", "vjp_jvp")
WHERE = (":where-x-hat", ":where-P", ":where-bar-P")
"""The definitions a result adds (of the names its compact forms are written through)."""
SHORT_PROOF = {DEFINITION: "definition", SYMBOLIC: "proven for every size",
               RANDOM_POINTS: "checked at random points, every axis of size " + ", ".join(map(str, CHECK_SIZES))}
"""How an equation was established, as the result fragment says it (``PROOF`` in full)."""
"""The kinds of equation a result fragment states (besides the definitions)."""


@dataclass(frozen=True)
class ResultView:
    rows: tuple[Row, ...]
    """The named x_hat (where a form uses it), then the compact VJP and JVP of every input."""
    matrix_intro: str
    matrices: tuple[Row, ...]
    """The matrix form of each input's Jacobian that has one."""
    second: tuple[Row, ...]
    """Each input's VJP differentiated along the tangents (empty when abridged)."""
    second_size: str
    """``\\tiny`` where a line of the second order has nothing to break at, else ''."""
    equations: tuple[Equation, ...]
    """Every equation of the result, in order."""


def result_view(eqs: Equations, derivation: Derivation, abridged: bool = False) -> ResultView:
    """The result equations, each checked; ``abridged``: the kernels' forms and no second order."""
    first = result_rows(eqs, derivation, derivation.kernel_form if abridged else None)
    op = label_part(eqs.model.name)
    matrices = [matrix_rows(eqs, g, f"eq:{op}:matrix-{label_part(g.input.name)}", diagonal=False,
                            factored_only=True)
                for g in derivation.gradients]  # a diagonal one is the VJP again: the derivation shows it
    intro = next((text for text, found in matrices if found), "")
    second = () if abridged else second_results(eqs, derivation)
    wide = any(not fits_column(list(equation.rhs_lines), equation.width) for equation in second)
    numbered = [e for e in eqs.all if e.kind in RESULT_KINDS or e.label.endswith(WHERE)]
    return ResultView(first, intro, joined([found for _, found in matrices]), rows(list(second)),
                      r"\tiny" if wide else "", tuple(numbered))


def joined(blocks: list[tuple[Row, ...]]) -> tuple[Row, ...]:
    """The rows of several align blocks as one block (a line break after each block's last row)."""
    out = [row for block in blocks for row in block]
    return tuple(Row(r.intertext, r.left, r.right, r.end if r.end.endswith("\\\\") or i == len(out) - 1
                     else r.end + " \\\\") for i, r in enumerate(out))


def result_rows(eqs: Equations, derivation: Derivation,
                forms: Callable[[str, str], Compact] | None = None) -> tuple[Row, ...]:
    """A definition of x_hat where a form uses it, then the compact VJP and JVP of every input
    (``forms(input, kind)``: which form to show; default the compact one)."""
    forms = forms or derivation.compact
    model, op = eqs.model, label_part(eqs.model.name)
    equations: list[Equation] = []
    weights = softmax_weights(derivation)
    through = {}  # (input, kind) -> the form written through attention's P and P-bar
    if weights is not None:
        through = {(g.input.name, kind): through_weights(forms(g.input.name, kind).expr, weights)
                   for g in derivation.gradients for kind in ("vjp", "jvp")}
        if any(expr is not None for expr in through.values()):
            equations += weight_rows(eqs, weights)
    for gradient in derivation.gradients:
        for kind in ("vjp", "jvp"):
            form = forms(gradient.input.name, kind)
            if form.through == HAT and SHOWN_HAT not in eqs.written_through:
                exact = expand_named(form.definition, derivation.rewriter.named)
                eqs.written_through[SHOWN_HAT] = (exact, tuple(model.output_indices))
                entry = sp.IndexedBase(SHOWN_HAT)[tuple(model.output_indices)]
                equations.append(eqs.add(f"eq:{op}:where-x-hat", DEFINITION, entry, exact, shown_lhs=entry,
                                         shown_rhs=eqs.shown(shown(eqs, form.definition)), means=True))
    for gradient in derivation.gradients:
        name, out, wrt = gradient.input.name, model.output_indices, gradient.wrt_indices
        weight = sp.IndexedBase(COTANGENT)[out] if out else sp.Symbol(COTANGENT)
        tangent = sp.IndexedBase(tangent_name(name))[wrt] if wrt else sp.Symbol(tangent_name(name))
        for kind, derivative, jacobian in (("vjp", weight * gradient.steps[0].expr, weight * gradient.jacobian),
                                           ("jvp", gradient.steps[0].expr * tangent, gradient.jacobian * tangent)):
            bound = out if kind == "vjp" else wrt
            form = forms(name, kind)
            # derived from the Jacobian's contraction by the engine's rules (contract.py, then
            # compact.py's chain): proven for every size, as made
            expr = through.get((name, kind)) or form.expr
            before = len(eqs.all)
            written = jvp_through_hat(eqs, derivation, gradient) if kind == "jvp" else None
            equations += [e for e in eqs.all[before:] if e.kind == "tangent"]  # x-hat-dot, defined first
            display = written if written is not None else eqs.shown(shown(eqs, expr))
            with eqs.output_letters(wrt if kind == "vjp" else (), display):  # x̄_{bgcs}, as y_{bgcs}
                title = (rf"\bar{{{eqs.printer.base_name(name)}}}" + subscript(eqs, wrt) if kind == "vjp" else
                         output_tangent(eqs, name if len(derivation.gradients) > 1 else None))
                equations.append(eqs.add(f"eq:{op}:{kind}-{label_part(name)}", kind, summed(derivative, bound),
                                         form.written, name=title, show_lhs=False, shown_rhs=display, input=name,
                                         against=summed(jacobian, bound), rules=DERIVED_BY, derived=True,
                                         means=True))
    return rows(equations)


def weight_rows(eqs: Equations, weights: Weights) -> list[Equation]:
    """The definitions of attention's P and P-bar, each written through for the checks."""
    op, query, key = label_part(eqs.model.name), weights.query, weights.key
    rows_added = []
    for name, label, definition in ((WEIGHT, "where-P", weight_at(weights, query, key)),
                                    (WEIGHT_BAR, "where-bar-P", weight_bar_at(weights, query, key))):
        entry = sp.IndexedBase(name, positive=True)[query, key]
        display = eqs.shown(shown(eqs, definition))
        eqs.written_through[name] = (display, (query, key))
        rows_added.append(eqs.add(f"eq:{op}:{label}", DEFINITION, entry, display, shown_lhs=entry,
                                  shown_rhs=display, means=True))
    return rows_added


def assumptions(eqs: Equations, derivation: Derivation, layout_text: str) -> str:
    """What the results assume, as LaTeX sentences: positive parameters, the model's notes (training
    mode, biased variance), the variant covered, and how the caller's arrays map onto the axes."""
    model, said = eqs.model, []
    positive = [p for p in model.params if p.symbol is not None and p.symbol.is_positive]
    if positive:
        said.append("$" + ", ".join(f"{eqs.tex(p.symbol)} > 0" for p in positive) + "$.")
    said += [maths_text(note, model, eqs.printer) for note in model.notes]
    for param in model.params:
        if param.choices:
            what = f" ({maths_text(param.doc, model, eqs.printer)})" if param.doc else ""
            said.append(f"This document covers \\texttt{{{tex_escape(param.name)}}} = "
                        f"\\texttt{{{tex_escape(repr(param.default))}}} only; the kernels cover every value{what}")
    said.append(layout_text)
    return " ".join(s if s.endswith(".") else s + "." for s in said)


def proof_text(equations: tuple[Equation, ...]) -> str:
    """For each way of establishing an equation, the equations established so: \\eqref each, a run of
    consecutive ones as a range (\\eqref{first}--\\eqref{last}); a clause, its stop left to the sentence."""
    runs: list[list[Equation]] = []
    for equation in equations:
        if runs and runs[-1][-1].check == equation.check:
            runs[-1].append(equation)
        else:
            runs.append([equation])
    groups: dict[str, list[str]] = {}
    for run in runs:
        first, last = run[0].label, run[-1].label
        ref = rf"\eqref{{{first}}}" + (rf"--\eqref{{{last}}}" if len(run) > 1 else "")
        groups.setdefault(run[0].check, []).append(ref)
    return "; ".join(f"{', '.join(refs)}: {SHORT_PROOF[check]}" for check, refs in groups.items())
