"""The frozen view of one operator's derivation document: checked equations as printed rows.

Everything the LaTeX templates lay out is decided here: the definition, for each differentiable
input the engine's steps (each naming its rules), the named rewrites to the simplified Jacobian,
its matrix form where it has one, the VJP and JVP, and the numerically stable form the kernel
uses.  Every equation passes through ``Equations.add``, which checks it before it is printed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp

from ...budget import step, stepped
from ...calculus.pipeline import COTANGENT, Derivation, InputGradient, tangent_name
from ...calculus.rules import simplification_stages
from ...display.catalogue import TAGS
from ...display.latex import DisplayPartial
from ...model import Input, OperatorModel, Param, dim_of, domains
from ...schedule.residuals import saving
from ...version import __version__
from .equations import DEFINITION, Equation, Equations, Row, rows
from .headers import bibliography_keys
from .maths_text import maths_text
from .matrix_section import matrix_rows
from .result import ResultView, assumptions, proof_text, result_view
from .second import SecondView, second_view
from .stable import StableView, stable_form
from .symbols import output_name, output_tangent, subscript, summed
from .text import code_text, label_part, label_text, prose_text, rewrite_text, rule_text, tex_escape


@dataclass(frozen=True)
class InputView:
    """The derivation with respect to one input."""

    name: str
    title: str
    label: str
    parameter: bool
    """An optional input (a scale or shift shared by the batch), listed under parameter gradients."""
    steps: tuple[Row, ...]
    simplification: tuple[Row, ...]
    simplified_already: bool
    matrix_ref: str
    """\\eqref of the matrix form in the result, or ''."""
    matrix_intro: str
    matrix: tuple[Row, ...]
    """A diagonal matrix form, shown here rather than in the result."""
    vjp: tuple[Row, ...]
    jvp: tuple[Row, ...]
    batch_note: str


@dataclass(frozen=True)
class DocumentView:
    name: str
    title: str
    """The name for the section title, breakable after its underscores."""
    label: str
    summary: str
    provenance: str
    introduced: str
    """'Introduced in [cite].' for the papers the model names, or ''."""
    torch: str
    inputs_text: tuple[str, ...]
    params_text: tuple[str, ...]
    ranges: str
    result_ranges: str
    """The ranges of the indices the definition and the result use (the result fragment's)."""
    layout_text: str
    tag: str
    """The short prefix of the equation numbers ((ln.3)), short enough to stay on the equation's line."""
    definition: tuple[Row, ...]
    result: ResultView
    """The compact results (``result.py``), numbered first so their numbers never move."""
    assumptions: str
    proof: str
    """How each result equation was established (LaTeX)."""
    identity: str
    """The derive version and the digests that identify this document (filled in by ``target.py``)."""
    gradients: tuple[InputView, ...]
    parameter_gradients: tuple[InputView, ...]
    jvp_total: str
    stable: StableView | None
    second: SecondView | None
    """The second order (``second.py``): each VJP differentiated along the tangents (None: abridged)."""
    checks: str
    equations: tuple[Equation, ...]
    labels_intro: str
    label_index: tuple[str, ...]
    abridged: str = ""
    """Why the derivation steps are left out (LaTeX), or '' for the whole document."""
    saved: str = ""
    """What the kernels' forward saves for the backward (``derive/schedule/residuals.py``), or ''."""
    means: str = ""
    """The indices under the first mean the definition or the result shows (``display.means``), or ''."""
    means_over: str = ""
    """The same indices as a list ('j, l')."""


def build_document(derivation: Derivation, abridged: str = "") -> DocumentView:
    """Every section of one operator's document, each equation checked before it is kept.
    ``abridged``: why the derivation is left out; the document then holds the definition and the
    VJP and JVP the kernels compute (``Derivation.kernel_form``), checked like every equation."""
    model = derivation.model
    eqs = Equations(model, output_name(model))
    definition = _definition(eqs)
    with step("the result"):  # the document's order: the result right after the definition
        result = result_view(eqs, derivation, bool(abridged))
    result_ranges = _ranges(eqs, (*definition, *result.rows, *result.matrices, *result.second))  # shown first
    if abridged:
        views, stable, second = {}, None, None
    else:
        views = {g.input.name: stepped(f"the derivation by {g.input.name}", _input_view, eqs, derivation, g)
                 for g in derivation.gradients}
        stable = stepped("the numerical form", stable_form, eqs, derivation)
        second = stepped("the second order", second_view, eqs, derivation)
    mean = _first_mean((*definition, *result.rows, *result.second))
    data = tuple(views[g.input.name] for g in derivation.gradients if not g.input.optional and views)
    params = tuple(views[g.input.name] for g in derivation.gradients if g.input.optional and views)
    return DocumentView(
        name=tex_escape(model.name), title=prose_text(model.name), label=f"sec:{label_part(model.name)}",
        summary=maths_text(model.summary, model, eqs.printer),
        provenance=(f"Generated by derive {__version__}~\\cite{{derive}} from \\texttt{{{code_text(model.source)}}} "
                    f"(SymPy {sp.__version__}~\\cite{{meurer2017sympy}})."),
        introduced=_introduced(model),
        torch=code_text(model.torch), inputs_text=_inputs_text(eqs, model.inputs),
        params_text=tuple(_param_text(eqs, p) for p in model.params), ranges=_ranges(eqs),
        result_ranges=result_ranges,
        layout_text=_layout_text(eqs), tag=equation_tag(model.name),
        definition=definition, result=result, assumptions=assumptions(eqs, derivation, _layout_text(eqs)),
        proof=proof_text(result.equations), identity="", gradients=data, parameter_gradients=params,
        jvp_total=_jvp_total(eqs, derivation), stable=stable, second=second, checks=_checks(eqs.all),
        equations=tuple(eqs.all),
        labels_intro=_labels_intro(model, bool(abridged)), label_index=_label_index(eqs), abridged=abridged,
        saved=_saved_text(eqs, derivation), means=mean,
        means_over=", ".join(_subscript_letters(mean)))


def _first_mean(shown: tuple[Row, ...]) -> str:
    """The LaTeX of the indices under the first mean of ``shown`` (\\langle f \\rangle_{i}: 'i'), or ''."""
    found = next((m for row in shown for m in re.findall(r"\\rangle_\{([^{}]*)\}", row.right)), "")
    return found


TAG_LENGTH = 6
"""The longest operator name an equation number shows whole; longer ones show the catalogue's short
name (``TAGS``: layernorm -> ln) or their initials (a user's model_name -> mn)."""


def equation_tag(name: str) -> str:
    """The prefix of an operator's equation numbers: the catalogue's short name, the name itself
    when short, else the initials of a long one (scaled_dot_product_attention -> sdpa)."""
    if name in TAGS:
        return TAGS[name]
    if len(name) <= TAG_LENGTH:
        return tex_escape(name)
    parts = [part for part in name.split("_") if part]
    return tex_escape("".join(part[0] for part in parts) if len(parts) > 1 else name[:4])


class UnknownCitationError(ValueError):
    """A model names a BibTeX key that derive.bib does not hold."""


def _introduced(model: OperatorModel) -> str:
    unknown = [key for key in model.cite if key not in bibliography_keys()]
    if unknown:
        raise UnknownCitationError(f"{model.name}: cite={unknown!r} names no entry of "
                                   f"templates/latex/derive.bib.jinja; "
                                   f"add the entry there")
    return f"Introduced in~\\cite{{{','.join(model.cite)}}}." if model.cite else ""


# definition -----------------------------------------------------------------------------------
def _definition(eqs: Equations) -> tuple[Row, ...]:
    model, op = eqs.model, label_part(eqs.model.name)
    equations = [eqs.add(f"eq:{op}:definition", DEFINITION, eqs.output_entry, model.output, shown_lhs=eqs.output_entry,
                         means=True)]
    for symbol, definition in eqs.named:
        exact = eqs.unname(definition)
        equations.append(eqs.add(f"eq:{op}:where-{label_part(str(symbol))}", DEFINITION, symbol, exact,
                                 shown_lhs=symbol, shown_rhs=definition, means=True))
    return rows(equations)


def _inputs_text(eqs: Equations, inputs: tuple[Input, ...]) -> tuple[str, ...]:
    """'$x \\in \\mathbb{R}^{n}$' per input, those of one space after one another together:
    '$\\gamma, \\beta \\in \\mathbb{R}^{C}$ ($\\gamma$ 1, $\\beta$ 0 if not given)'."""
    groups: list[list[Input]] = []
    for inp in inputs:
        if groups and _space(eqs, groups[-1][0]) == _space(eqs, inp) and not _extras(groups[-1][0], False) \
                and not _extras(inp, False):
            groups[-1].append(inp)
        else:
            groups.append([inp])
    return tuple(_group_text(eqs, group) for group in groups)


def _space(eqs: Equations, inp: Input) -> str:
    dims = r" \times ".join(eqs.tex(d) for d in inp.dims)
    return r"\mathbb{R}" + (f"^{{{dims}}}" if inp.dims else "")


def _extras(inp: Input, default: bool = True) -> list[str]:
    """What the text says of an input besides its space (its default, with ``default``)."""
    extras = [f"{tex_escape(repr(inp.default))} if not given"] if inp.optional and default else []
    if not inp.differentiable:
        extras.append("not differentiated")
    if inp.domain != "real":
        extras.append(f"each entry {tex_escape(domains.describe(inp.domain))}")
    return extras


def _group_text(eqs: Equations, group: list[Input]) -> str:
    names = [eqs.printer.base_name(inp.name) for inp in group]
    text = f"${', '.join(names)} \\in {_space(eqs, group[0])}$"
    if len(group) == 1:
        extras = _extras(group[0])
        return text + (f" ({'; '.join(extras)})" if extras else "")
    defaults = [f"${name} = {tex_escape(repr(inp.default))}$" for name, inp in zip(names, group) if inp.optional]
    return text + (f" ({', '.join(defaults)} if not given)" if defaults else "")


def _param_text(eqs: Equations, param: Param) -> str:
    symbol = f"${eqs.tex(param.symbol)}$ = " if param.symbol is not None else ""
    doc = f": {maths_text(param.doc, eqs.model, eqs.printer)}" if param.doc else ""
    if param.required:  # no default to state
        return rf"\texttt{{{tex_escape(param.name)}}}" + (f" (${eqs.tex(param.symbol)}$)" if symbol else "") + doc
    return rf"\texttt{{{tex_escape(param.name)}}} ({symbol}{tex_escape(repr(param.default))} if not given){doc}"


def _ranges(eqs: Equations, shown: tuple[Row, ...] | None = None) -> str:
    """'$i, j \\in \\{1, \\dots, n\\}$' for each axis, from every index the model and the displayed
    equations use (call it once every equation is added); ``shown``: only the letters these rows print."""
    by_dim: dict[sp.Expr, list[str]] = {}
    used = eqs.model.output.atoms(sp.Idx) | set(eqs.model.output_indices) | eqs.indices
    letters = [(eqs.tex(idx), dim_of(idx)) for idx in sorted(used, key=lambda i: (str(i.label), str(i.upper)))]
    owned = [(eqs.tex(sp.Symbol(c, integer=True)), dim) for c, (_, dim) in sorted(eqs.letters.owner.items())]
    letters += owned  # and each letter shown for an axis only where a VJP takes the output's letters
    if shown is not None:  # the letters these rows print, each with the axis it was given for
        printed = _printed_letters(shown)
        letters = [(tex, dim) for tex, dim in owned if tex in printed]
    for letter, dim in letters:
        names = by_dim.setdefault(dim, [])
        if letter not in names:
            names.append(letter)
    parts = [f"${', '.join(names)} \\in \\{{1, \\dots, {eqs.tex(dim)}\\}}$" for dim, names in by_dim.items()]
    return ", ".join(parts)


def _printed_letters(shown: tuple[Row, ...]) -> set[str]:
    """The index letters the rows print in subscripts (x_{kpq}, \\rangle_{bs}, \\sum_{j=1}, k_{w,i'})."""
    return {letter for row in shown for group in re.findall(r"_\{([^{}]*)\}", row.left + " " + row.right)
            for letter in _subscript_letters(group)}


def _subscript_letters(group: str) -> list[str]:
    """The index letters of one printed subscript, in order ('kpq', 'w,i'', 'j=1')."""
    group = group.split("=")[0]
    return [part.strip() for part in group.split(",")] if "," in group else re.findall(r"[A-Za-z]'*", group)


# one input ------------------------------------------------------------------------------------
def _input_view(eqs: Equations, derivation: Derivation, gradient: InputGradient) -> InputView:
    name = gradient.input.name
    key = f"{label_part(eqs.model.name)}:{label_part(name)}"
    lhs = gradient.steps[0].expr
    shown_lhs = DisplayPartial(eqs.output_entry, gradient.wrt)
    steps, notes, previous = [], [], None
    for number, derived in enumerate(gradient.steps):
        steps.append(eqs.add(f"eq:{key}:step-{number}", "step", lhs, derived.expr, shown_lhs=shown_lhs,
                             rules=derived.rules, against=previous, input=name))
        notes.append(rule_text(derived.rules))
        previous = derived.expr
    simplification, stage_notes, simplified_already = _simplification(eqs, gradient, lhs, shown_lhs)
    matrix = _label(eqs, "matrix", name)
    cited = next((e.label for e in eqs.all if e.label in (matrix, f"{matrix}-factored")), None)
    matrix_ref = rf"\eqref{{{cited}}}" if cited else ""
    intro, diagonal = ("", ()) if matrix_ref else matrix_rows(eqs, gradient, matrix, diagonal=True)
    symbol = eqs.printer.base_name(name)
    return InputView(
        name=name, title=f"\\texorpdfstring{{${symbol}$}}{{{tex_escape(name)}}}", label=f"sec:{key}",
        parameter=gradient.input.optional, steps=rows(steps, notes, chained=True),
        simplification=rows(simplification, stage_notes, chained=True), simplified_already=simplified_already,
        matrix_ref=matrix_ref, matrix_intro=intro, matrix=diagonal, vjp=_vjp(eqs, gradient),
        jvp=_jvp(eqs, derivation, gradient),
        batch_note=_batch_note(eqs, gradient))


def _label(eqs: Equations, kind: str, input_name: str) -> str:
    """The stable label of one kind of equation for one input: eq:<op>:<kind>-<input>."""
    return f"eq:{label_part(eqs.model.name)}:{kind}-{label_part(input_name)}"


def _expanded(eqs: Equations, kind: str, input_name: str) -> str:
    """The label of an intermediate, uncompacted VJP or JVP: eq:<op>:<input>:<kind>-expanded (the
    result's compact form holds eq:<op>:<kind>-<input>)."""
    return f"eq:{label_part(eqs.model.name)}:{label_part(input_name)}:{kind}-expanded"


def _simplification(eqs: Equations, gradient: InputGradient, lhs: sp.Expr, shown_lhs: sp.Expr):
    """The visible named rewrites from the raw derivative to the Jacobian, the Jacobian last."""
    raw = gradient.steps[-1].expr
    shown_before, visible = eqs.tex(eqs.shown(raw)), []
    for pass_name, expr in simplification_stages(raw):
        tex = eqs.tex(eqs.shown(expr))
        if tex != shown_before:
            visible.append((pass_name, expr))
            shown_before = tex
    equations, notes, previous = [], [], raw
    key = f"{label_part(eqs.model.name)}:{label_part(gradient.input.name)}"
    for number, (pass_name, expr) in enumerate(visible[:-1], start=1):
        equations.append(eqs.add(f"eq:{key}:simplify-{number}", "simplification", lhs, expr,
                                 shown_lhs=shown_lhs, rules=(pass_name,), against=previous,
                                 input=gradient.input.name))
        notes.append(rewrite_text(pass_name))
        previous = expr
    final_rules = (visible[-1][0],) if visible else ()
    equations.append(eqs.add(_label(eqs, "jacobian", gradient.input.name), "jacobian", lhs, gradient.jacobian,
                             shown_lhs=shown_lhs, rules=final_rules, against=previous,
                             input=gradient.input.name))
    notes.append(rewrite_text(final_rules[0]) if final_rules else "")
    return equations, notes, not visible


def _vjp(eqs: Equations, gradient: InputGradient) -> tuple[Row, ...]:
    """x̄_k = sum_i ȳ_i dy_i/dx_k = (the engine's VJP), checked against plain differentiation."""
    out = eqs.model.output_indices
    weight = sp.IndexedBase(COTANGENT)[out] if out else sp.Symbol(COTANGENT)
    contraction = summed(weight * gradient.steps[0].expr, out)
    shown = summed(weight * DisplayPartial(eqs.output_entry, gradient.wrt), out)
    name = rf"\bar{{{eqs.printer.base_name(gradient.input.name)}}}" + subscript(eqs, gradient.wrt_indices)
    # the contraction of the Jacobian (itself checked to be the derivative) by the engine's rules
    equation = eqs.add(_expanded(eqs, "vjp", gradient.input.name), "vjp", contraction, gradient.vjp, name=name,
                       shown_lhs=shown, input=gradient.input.name,
                       against=summed(weight * gradient.jacobian, out), rules=("contract",), derived=True)
    return rows([equation])


def _jvp(eqs: Equations, derivation: Derivation, gradient: InputGradient) -> tuple[Row, ...]:
    """ẏ_i = sum_k dy_i/dx_k ẋ_k = (the engine's JVP); one contribution per input when several."""
    wrt, name = gradient.wrt_indices, gradient.input.name
    tangent = sp.IndexedBase(tangent_name(name))[wrt] if wrt else sp.Symbol(tangent_name(name))
    contraction = summed(gradient.steps[0].expr * tangent, wrt)
    shown = summed(DisplayPartial(eqs.output_entry, gradient.wrt) * tangent, wrt)
    own = name if len(derivation.gradients) > 1 else None
    equation = eqs.add(_expanded(eqs, "jvp", name), "jvp", contraction, gradient.jvp, name=output_tangent(eqs, own),
                       shown_lhs=shown, input=gradient.input.name, against=summed(gradient.jacobian * tangent, wrt),
                       rules=("contract",), derived=True)
    return rows([equation])


def _saved_text(eqs: Equations, derivation: Derivation) -> str:
    """'Saved for the backward: ...' (the residuals the kernels' forward returns), or ''."""
    chosen = saving(derivation)
    if chosen is None:
        return ""
    parts = []
    for saved in chosen.saved:
        if saved.name == "y":
            parts.append(f"the output ${eqs.printer.doprint(sp.Symbol(output_name(eqs.model)))}$")
            continue
        axes = " and per " + ", ".join(f"${eqs.printer.doprint(d)}$" for d in saved.dims) if saved.dims else ""
        parts.append(f"${eqs.printer.doprint(sp.Symbol(saved.name))}$ (one per row{axes})")
    return ("Saved for the backward: " + ", ".join(parts) + r". The kernels' \texttt{forward(..., "
            "residuals=True)} returns these residuals; their vjp and jvp read them instead of recomputing them.")


def _jvp_total(eqs: Equations, derivation: Derivation) -> str:
    if len(derivation.gradients) < 2:
        return ""
    parts = [output_tangent(eqs, g.input.name) for g in derivation.gradients]
    return f"${output_tangent(eqs)} = {' + '.join(parts)}$"


IMPLICIT_BATCH = ("last", "axis")
"""Layouts whose arrays have batch axes the model does not write (the others write every axis, or
broadcast their inputs against each other)."""
BROADCAST = ("elementwise", "flatten")


def _layout_text(eqs: Equations) -> str:
    """How a caller's arrays map onto the axes written here, for this operator's layout."""
    layout, model = eqs.model.layout, eqs.model
    axes = sorted({d for inp in model.inputs for d in inp.dims}, key=str)
    if layout.kind == "axis":
        length = f" of length ${eqs.tex(axes[0])}$" if len(axes) == 1 else ""
        return (f"The axis{length} is the one the parameter \\texttt{{{tex_escape(layout.param or 'axis')}}} selects; "
                f"every other axis is a batch axis and is not written.")
    if layout.kind == "elementwise":
        if len(model.inputs) == 1:
            return "The input may have any shape; the formula holds entry by entry."
        return "Inputs of any shape broadcast against each other like NumPy arrays; the formula holds entry by entry."
    if layout.kind == "flatten":
        return "The inputs broadcast against each other and are then flattened onto the one axis written here."
    if layout.kind in IMPLICIT_BATCH:
        shared = [rf"$\bar{{{eqs.printer.base_name(inp.name)}}}$" for inp in model.differentiable_inputs
                  if inp.optional]  # a parameter every batch index shares (as _batch_note says)
        summed = f"; the kernels sum {' and '.join(shared)} over them" if shared else ""
        return f"Leading batch dimensions broadcast and are not written{summed}."
    return "Every axis is written."


def _batch_note(eqs: Equations, gradient: InputGradient) -> str:
    """For a parameter shared by entries the model does not write: the kernel's extra sum."""
    if not gradient.input.optional or eqs.model.layout.kind not in (*IMPLICIT_BATCH, *BROADCAST):
        return ""
    symbol = eqs.printer.base_name(gradient.input.name)
    if eqs.model.layout.kind in BROADCAST:
        return f"Where ${symbol}$ is broadcast, the kernel sums $\\bar{{{symbol}}}$ over the broadcast axes."
    return (f"One ${symbol}$ serves every leading batch index, so the kernel sums "
            f"$\\bar{{{symbol}}}$ over the batch dimensions.")


def _checks(equations: list[Equation]) -> str:
    counts: dict[str, int] = {}
    for equation in equations:
        counts[equation.check] = counts.get(equation.check, 0) + 1
    symbolic, numeric, defined = counts.get("symbolic", 0), counts.get("random points", 0), counts.get(DEFINITION, 0)
    return (f"{len(equations)} numbered equations: {defined} definitions, {symbolic} equalities proved "
            f"symbolically and {numeric} confirmed at random points")


# the label index ------------------------------------------------------------------------------
CITED_KINDS = {DEFINITION: "definition", "jacobian": "Jacobian", "matrix": "matrix form", "vjp": "VJP",
               "jvp": "JVP", "stable": "stable form", "hessian": "Hessian block", "vjp_jvp": "second order",
               "tangent": "tangent of a named quantity"}
"""The kinds of equation the label index lists (the results), and how it names them."""


def _labels_intro(model: OperatorModel, abridged: bool = False) -> str:
    op = label_text(f"eq:{label_part(model.name)}:")
    if abridged:
        return "those of the results are below."
    return (rf"those of the results are below. The steps are labelled {op}\allowbreak{{}}\emph{{input}}:"
            rf"\allowbreak{{}}step-\emph{{n}} and {op}\allowbreak{{}}\emph{{input}}:\allowbreak{{}}"
            rf"simplify-\emph{{n}}, those of the second order {op}\allowbreak{{}}\emph{{input}}-by-"
            rf"\allowbreak{{}}\emph{{input}}:\allowbreak{{}}step-\emph{{n}}; the twin "
            rf"\texttt{{{tex_escape(model.name)}.json}} lists every label.")


def _label_index(eqs: Equations) -> tuple[str, ...]:
    """'(op.12) VJP for $x$: eq:op:vjp-x' for each result equation, in document order."""
    items = []
    for equation in eqs.all:
        if equation.kind not in CITED_KINDS or equation.label.endswith("-expanded"):
            continue
        what = CITED_KINDS[equation.kind]
        if equation.input:
            what += f" for ${eqs.printer.base_name(equation.input)}$"
        items.append(rf"\eqref{{{equation.label}}} {what}: {label_text(equation.label)}")
    return tuple(items)
