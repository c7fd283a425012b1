"""The second order of a document: each VJP differentiated once more along the tangents, checked.

For each differentiable input x the section derives, for every input b whose tangent reaches x̄
(``Derivation.second_order``), the Hessian block ∂x̄_k/∂b_m step by step (the rules named, each step
checked against the one before, as the first order's steps) and its simplified form, and ends in
``\\dot{\\bar{x}}_k = sum_b sum_m ∂x̄_k/∂b_m ḃ_m`` (compact, through x̂ or y, where the first order's VJP
is), checked equal to the blocks contracted with the tangents and, by ``derive.proof.kernel`` before the twin
is written, to the oracle's Hessian contracted with ȳ and the tangents.

Readability rule: the steps of a block are printed when together they fit in ``STEP_LINES`` lines
(no step over ``STEP_OPS`` operations, no line too wide for the column) and the simplified block where
it fits in ``HESSIAN_LINES`` lines; a longer derivation (batchnorm's, group_norm's and attention's
larger blocks, layernorm's block by x) is shown short: the rules its steps apply, in order, and no
block.  The final formula is always printed; an input whose second derivative vanishes says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ...calculus.compact import HAT, compact
from ...calculus.differentiate import Partial
from ...calculus.pipeline import Derivation, InputGradient, tangent_name
from ...calculus.second import SecondTerm, wrt_entry
from ...display.layout import TEXT_WIDTH, break_lines, tex_width
from ...display.notation import second_order_name
from .equations import Equation, Equations, Row, rows
from .symbols import SHOWN_HAT, shown, subscript
from .tangent_form import tangent_form
from .text import label_part, rule_text

STEP_LINES = 100
"""A block whose steps would print more lines than this is shown short (the rules of its steps only)."""
STEP_OPS = 300
"""A step of more operations than this is too long to print whatever the others (SymPy's count_ops)."""
HESSIAN_LINES = 12
"""A Hessian block printed in more lines than this is left out (the final formula is printed)."""
COMPACT_OPS = 120
"""A Hessian block of at most this many operations is also tried in compact form (through y or x̂)."""


@dataclass(frozen=True)
class TermView:
    """∂x̄_k/∂b_m for one input b: its steps (or, short, the rules they apply) and the block."""

    title: str
    steps: tuple[Row, ...]
    short: str
    """The short form's sentence (the rules of each step), or '' when the steps are printed."""
    hessian: tuple[Row, ...]
    hessian_note: str


@dataclass(frozen=True)
class SecondInputView:
    title: str
    label: str
    terms: tuple[TermView, ...]
    zero_text: str
    """Which inputs' tangents do not reach this input's gradient ('' when all do)."""


@dataclass(frozen=True)
class SecondView:
    output: str
    """The output's LaTeX symbol (y)."""
    intro: str
    vanishing: str
    """One sentence when every second derivative vanishes ('' otherwise): then ``inputs`` is empty."""
    inputs: tuple[SecondInputView, ...]
    refs: str
    """The \\eqref of each input's ``vjp_jvp``, stated in the result (``second_results``)."""


def second_view(eqs: Equations, derivation: Derivation) -> SecondView:
    """The second-order section: per input its terms, then every input's ``vjp_jvp`` (checked)."""
    symbols = {g.input.name: eqs.printer.base_name(g.input.name) for g in derivation.gradients}
    intro = _intro(eqs)
    terms = {g.input.name: derivation.second_order(g.input.name) for g in derivation.gradients}
    inputs = tuple(_input_view(eqs, derivation, g, terms[g.input.name]) for g in derivation.gradients
                   if terms[g.input.name])
    result = tuple(e for e in eqs.all if e.kind == "vjp_jvp")  # stated in the result (second_results)
    vanishing = ""
    if not inputs:
        names = ", ".join(f"${second_order_name(n, 'latex', s)}$" for n, s in symbols.items())
        vanishing = (f"The second derivative vanishes: no VJP depends on an input (each is linear in "
                     f"$\\bar{{{eqs.printer._print(sp.Symbol(eqs.output_name))}}}$ alone, or constant where "
                     f"the derivative is taken), so the derivative{'s' if len(symbols) > 1 else ''} along the "
                     f"tangents {names} {'is' if len(symbols) == 1 else 'are'} zero, as the result states:")
    return SecondView(output=eqs.printer._print(sp.Symbol(eqs.output_name)), intro=intro, vanishing=vanishing,
                      inputs=inputs,
                      refs=", ".join(rf"\eqref{{{e.label}}}" for e in result))


def second_results(eqs: Equations, derivation: Derivation) -> tuple[Equation, ...]:
    """Every input's ``vjp_jvp`` (compact where the first order's VJP is), each checked against the
    Hessian blocks contracted with the tangents: proved for every size by the rules where they can."""
    out: list[Equation] = []
    for g in derivation.gradients:
        before = len(eqs.all)
        result = _result(eqs, derivation, g, derivation.second_order(g.input.name))
        out += [e for e in eqs.all[before:] if e.kind == "tangent"] + [result]  # the tangents it uses first
    return tuple(out)


def _intro(eqs: Equations) -> str:
    y = eqs.printer._print(sp.Symbol(eqs.output_name))
    x = eqs.printer.base_name(eqs.model.differentiable_inputs[0].name)
    return (rf"With the cotangent $\bar{{{y}}}$ held fixed, the VJP of each input is differentiated once more, "
            rf"along the tangents of the inputs: ${second_order_name('', 'latex', x)}_{{k}} = \sum_{{b}} \sum_{{m}} "
            rf"\frac{{\partial \bar{{{x}}}_{{k}}}}{{\partial b_{{m}}}} \dot{{b}}_{{m}}$, the derivative of "
            rf"$\bar{{{x}}}$ along the tangents $\dot{{b}}$ of the inputs $b$ (a kernel's \texttt{{vjp\_jvp}}). "
            rf"With $L = \sum_{{i}} \bar{{{y}}}_{{i}} {y}_{{i}}$ the block $\partial \bar{{{x}}}_{{k}} / "
            rf"\partial b_{{m}}$ is the Hessian block $\partial^2 L / \partial {x}_{{k}} \partial b_{{m}}$, "
            rf"and ${second_order_name('', 'latex', x)}$ the Hessian-vector product of $L$; with the JVP it is "
            rf"what a double backward computes. The steps of a block are printed where they fit in {STEP_LINES} "
            rf"lines, and the simplified block where it fits in {HESSIAN_LINES}; a longer derivation is shown "
            rf"short, by the rules its steps apply, in order.")


def _key(eqs: Equations, name: str) -> str:
    return f"{label_part(eqs.model.name)}:{label_part(name)}"


def _input_view(eqs: Equations, derivation: Derivation, gradient: InputGradient,
                terms: tuple[SecondTerm, ...]) -> SecondInputView:
    name = gradient.input.name
    symbol = eqs.printer.base_name(name)
    views = tuple(_term_view(eqs, derivation, gradient, term) for term in terms)
    reached = {t.by.name for t in terms}
    idle = [g.input.name for g in derivation.gradients if g.input.name not in reached]
    zero_text = ""
    if idle:
        listed = ", ".join(f"$\\dot{{{eqs.printer.base_name(n)}}}$" for n in idle)
        zero_text = (f"The tangent{'s' if len(idle) > 1 else ''} {listed} do{'' if len(idle) > 1 else 'es'} not "
                     f"reach $\\bar{{{symbol}}}$: its derivative by {'them' if len(idle) > 1 else 'it'} vanishes.")
    return SecondInputView(title=f"\\texorpdfstring{{$\\bar{{{symbol}}}$}}{{d{name}}}",
                           label=f"sec:{_key(eqs, name)}:second", terms=views, zero_text=zero_text)


def _block_tex(eqs: Equations, gradient: InputGradient, wrt: sp.Indexed) -> str:
    bar = rf"\bar{{{eqs.printer.base_name(gradient.input.name)}}}_{{{eqs.printer.subscript(gradient.wrt_indices)}}}" \
        if gradient.wrt_indices else rf"\bar{{{eqs.printer.base_name(gradient.input.name)}}}"
    return rf"\frac{{\partial {bar}}}{{\partial {eqs.tex(wrt)}}}"


def _term_view(eqs: Equations, derivation: Derivation, gradient: InputGradient, term: SecondTerm) -> TermView:
    name, by = gradient.input.name, term.by.name
    lhs, lhs_tex = term.steps[0].expr, _block_tex(eqs, gradient, term.wrt)
    key = f"{_key(eqs, name)}-by-{label_part(by)}"
    title = f"By ${eqs.printer.base_name(by)}$"
    printed = _fits(eqs, term)
    steps: tuple[Row, ...] = ()
    short = ""
    if printed:
        equations, notes, previous = [], [], None
        for number, step in enumerate(term.steps):
            equations.append(eqs.add(f"eq:{key}:step-{number}", "second-step", lhs, step.expr, lhs_tex=lhs_tex,
                                     shown_lhs=lhs, rules=step.rules, against=previous, input=name))
            notes.append(rule_text(step.rules))
            previous = step.expr
        steps = rows(equations, notes, chained=True)
    else:
        said = [f"({n}) {rule_text(s.rules)[3:]}" for n, s in enumerate(term.steps) if s.rules]
        short = (f"The derivative takes {len(term.steps) - 1} steps, too long to print; they apply, in order: "
                 f"{'; '.join(said)}. The result below is checked against the oracle's Hessian.")
    hessian: tuple[Row, ...] = ()
    note = ("Its Hessian block is too long to print as well; contracted with the tangent, it is a term "
            "of the result below.")
    if printed:
        hessian, note = _hessian(eqs, derivation, gradient, term, lhs, lhs_tex, term.steps[-1].expr)
    return TermView(title=title, steps=steps, short=short, hessian=hessian, hessian_note=note)


def _fits(eqs: Equations, term: SecondTerm) -> bool:
    """Do the term's steps print in at most ``STEP_LINES`` lines (counted until they do not)?"""
    if max(sp.count_ops(step.expr) for step in term.steps) > STEP_OPS:
        return False  # a step this large prints in well over a page (and costs seconds to lay out)
    lines = 0
    for step in term.steps:
        printed = break_lines(eqs.printer, eqs.shown(step.expr), TEXT_WIDTH - 4)
        lines += len(printed)
        if lines > STEP_LINES or not fits_column(printed):
            return False
    return True


def fits_column(lines: list[str], width: float = TEXT_WIDTH) -> bool:
    """Does every line fit the column, broken to ``width`` (a line with nothing to break at may not)?"""
    return all(tex_width(line) <= width - 4 for line in lines)


def _hessian(eqs: Equations, derivation: Derivation, gradient: InputGradient, term: SecondTerm, lhs: sp.Expr,
             lhs_tex: str,
             against: sp.Expr | None) -> tuple[tuple[Row, ...], str]:
    """The simplified block (its compact form where that is lighter), if it prints short enough."""
    exact, shown = term.hessian, None
    if sp.count_ops(term.hessian) <= COMPACT_OPS:
        form = compact(term.hessian, derivation.rewriter, eqs.dims)
        if _known(eqs, form) and (form.through is not None or form.expr != term.hessian):
            exact, shown = form.written, _named(eqs, form.expr)
    shown = eqs.shown(exact) if shown is None else shown
    printed = break_lines(eqs.printer, shown, TEXT_WIDTH - 4)
    if len(printed) > HESSIAN_LINES or not fits_column(printed):
        return (), ("Its Hessian block is too long to print; contracted with the tangent, it is a term of the "
                    "result below.")
    label = f"eq:{label_part(eqs.model.name)}:hessian-{label_part(gradient.input.name)}-{label_part(term.by.name)}"
    equation = eqs.add(label, "hessian", lhs, exact, lhs_tex=lhs_tex, shown_lhs=lhs, shown_rhs=shown,
                       rules=("simplify",), against=against, input=gradient.input.name)
    return rows([equation]), ""


def _result(eqs: Equations, derivation: Derivation, gradient: InputGradient,
            terms: tuple[SecondTerm, ...]) -> Equation:
    """x̄̇_k = the compact ``vjp_jvp``, checked against its definition (the open derivatives)."""
    name, wrt = gradient.input.name, gradient.wrt_indices
    taken = {str(i.label) for i in wrt} | {i.name for i in derivation.model.inputs}
    parts = []
    for g in derivation.gradients:
        by = next((t.wrt for t in terms if t.by.name == g.input.name), None)
        by = wrt_entry(g.input, gradient.vjp, set(taken)) if by is None else by
        tangent = sp.IndexedBase(tangent_name(g.input.name))[tuple(by.indices)] if by.indices \
            else sp.Symbol(tangent_name(g.input.name))
        part = Partial(gradient.vjp, by) * tangent
        if part == 0:
            continue
        for idx in by.indices:
            part = sp.Sum(part, (idx, idx.lower, idx.upper))
        parts.append(part)
    if not terms:
        lhs = sp.Add(*parts)
        with eqs.output_letters(wrt):
            return eqs.add(f"eq:{label_part(eqs.model.name)}:vjp_jvp-{label_part(name)}", "vjp_jvp", lhs,
                           sp.S.Zero, name=_title(eqs, name, wrt), shown_lhs=lhs, show_lhs=False, input=name,
                           rules=("differentiate",), derived=True)  # every second derivative simplified to 0
    exact, shown_rhs = derivation.vjp_jvp(name), None
    if derivation.compact(name, "vjp").through is not None:  # a form through x-hat or y may be lighter
        form = derivation.compact(name, "vjp_jvp")
        if _known(eqs, form):
            exact, shown_rhs = form.written, _named(eqs, form.expr)
    rules: tuple[str, ...] = ("contract", "compact") if shown_rhs is not None else ("contract",)
    through_tangents = tangent_form(eqs, derivation, gradient)
    if through_tangents is not None:  # the VJP differentiated along its names' tangents: two lines, not ten
        shown_rhs, rules = through_tangents, ("contract", "compact", "tangent")
    lhs, blocks = sp.Add(*parts), sp.S.Zero
    for term in terms:  # the blocks contracted with the tangents, as the first order's Jacobian with ȳ
        tangent = sp.IndexedBase(tangent_name(term.by.name))[tuple(term.wrt.indices)] if term.by.dims \
            else sp.Symbol(tangent_name(term.by.name))
        block = term.hessian * tangent
        for idx in (term.wrt.indices if term.by.dims else ()):
            block = sp.Sum(block, (idx, idx.lower, idx.upper))
        blocks += block
    with eqs.output_letters(wrt, eqs.shown(exact) if shown_rhs is None else shown_rhs):  # as the VJP's
        return eqs.add(f"eq:{label_part(eqs.model.name)}:vjp_jvp-{label_part(name)}", "vjp_jvp", lhs, exact,
                       name=_title(eqs, name, wrt), show_lhs=False, shown_lhs=lhs, shown_rhs=shown_rhs, input=name,
                       against=blocks, rules=rules, derived=True, means=True)


def _title(eqs: Equations, name: str, wrt: tuple[sp.Idx, ...]) -> str:
    """The second order's name: x-bar-dot with the entry's indices."""
    return second_order_name(name, "latex", eqs.printer.base_name(name)) + subscript(eqs, wrt)


def _known(eqs: Equations, form) -> bool:
    """Can the document show ``form``: not written through x̂, or x̂ defined above (the result section)."""
    return form.through != HAT or SHOWN_HAT in eqs.written_through


def _named(eqs: Equations, expr: sp.Expr) -> sp.Expr:
    return eqs.shown(shown(eqs, expr))

