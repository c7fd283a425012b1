"""Build the frozen, already-printed view of a NumPy kernel that the Jinja template lays out.

The template receives strings only: signatures, statement lines, result expressions.  All the
decisions (which temporaries are shared, how arrays sit on the frame, which results are guarded
by an optional input, one set of functions per formula-selecting parameter value) are made here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sympy as sp

from ...calculus.indices import bound_indices, free_indices, fresh_index, index_names, substitute_index
from ...calculus.pipeline import COTANGENT, Derivation, tangent_name
from ...model import OperatorModel, dim_of
from ...schedule.centring import refine_means
from ...schedule.cse import Output, Scheduled, schedule
from ...schedule.inplace import Lowered, Step, _renumber
from ...schedule.inplace import in_place as lower_in_place
from ...schedule.nesting import nest_sums
from ...schedule.stable import stabilize
from ...schedule.tangents import names_in, tangents_private
from .printer import ArraySpec, KernelPrinter


@dataclass(frozen=True)
class Statement:
    """``target op code``: an assignment (``=``) or an in-place update (``+=``, ``*=``, ...)."""

    target: str
    code: str
    op: str = "="


@dataclass(frozen=True)
class Block:
    """Statements computing one result; ``guard`` is the condition (code) under which it is computed."""

    input: str
    guard: str | None
    statements: tuple[Statement, ...]
    result: str
    positions: str
    """Frame positions of the result's axes (a Python tuple literal)."""
    keywords: str = ""
    """Extra keyword arguments of the runtime call taking the result: ``, scale=<per-row factor>``
    when it applies the result's last factor, ``, owned=True`` when the result is an array this call
    built, which it may add other terms into."""
    release: str = ""
    """Full-size temporaries of this block to ``del`` once its result is taken (a target that
    updates nothing in place frees them before the next block allocates its own)."""


@dataclass(frozen=True)
class Function:
    prelude: tuple[Statement, ...]
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Variant:
    """The four functions for one value of the formula-selecting parameter (or the only ones)."""

    value: str
    suffix: str
    shift: tuple[Statement, ...]
    forward: Function
    vjp: Function
    jvp: Function
    vjp_jvp: Function
    """One block per second-order term (input a along input b's tangent), guarded by ``wanted[a]``
    and b's tangent; its ``input`` is a, whose entry the term adds to."""


@dataclass(frozen=True)
class KernelView:
    """Everything the kernel template lays out, as printed strings."""

    name: str
    summary: str
    imports: tuple[str, ...]
    inputs: tuple[str, ...]
    differentiable: str
    optional: tuple[tuple[str, str], ...]
    index_inputs: str
    core_axes: str
    params: str
    signature: str
    vjp_signature: str
    """The signature with ``wrt=None`` (keyword-only): the inputs whose gradients the caller wants."""
    gradients: tuple[tuple[str, int, str], ...]
    """Each differentiable input: its name, its place in ``INPUTS``, its frame positions."""
    call: str
    input_tuple: str
    input_list: str
    layout: str
    layout_options: str
    frame: str
    sizes: tuple[str, ...]
    output_axes: str
    output_positions: str
    dispatch: str
    choices: str
    variants: tuple[Variant, ...]


def build_view(derivation: Derivation, printer_class: type[KernelPrinter] = KernelPrinter) -> KernelView:
    """The view of one operator's kernel, printed by ``printer_class`` (another target's printer
    subclass reuses the whole layout: the Array API target's)."""
    model = derivation.model
    choice = next((p for p in model.params if p.choices), None)
    printer = printer_class(model.dims(), _arrays(model), _names(model))
    variants = tuple(_variant_view(d, value, printer) for value, d in derivation.variants())
    frame = _runtime_frame(model)
    names = [inp.name for inp in model.inputs]
    return KernelView(
        name=model.name,
        summary=model.summary,
        imports=tuple(sorted(printer.imports)),
        inputs=tuple(names),
        differentiable=_tuple((i.name for i in model.differentiable_inputs), quote=True),
        optional=tuple((i.name, _default(i, frame, printer)) for i in model.inputs if i.optional),
        index_inputs=repr({i.name: str(i.index_of) for i in model.inputs if i.domain == "index"}),
        core_axes=repr({i.name: tuple(str(d) for d in i.dims) if frame else () for i in model.inputs}),
        params=repr({p.name: None if p.required else p.default for p in model.params}),
        signature=_signature(model),
        vjp_signature=_signature(model) + (", wrt=None" if model.params else ", *, wrt=None"),
        gradients=tuple((i.name, names.index(i.name), _positions(i.dims, model)) for i in model.differentiable_inputs),
        call=", ".join(names + [f"{p.name}={p.name}" for p in model.params]),
        input_tuple=_tuple(names),
        input_list=", ".join(names),
        layout=model.layout.kind,
        layout_options="{" + ", ".join(f"{p!r}: {p}" for p in (model.layout.param, model.layout.keepdims) if p) + "}",
        frame=_tuple(frame, quote=True),
        sizes=tuple(frame),
        output_axes=_tuple((str(d) for d in model.output_dims), quote=True) if frame else "()",
        output_positions=_positions(model.output_dims, model),
        dispatch=choice.name if choice else "",
        choices=_tuple(choice.choices, quote=True) if choice else "()",
        variants=variants,
    )


def _variant_view(derivation: Derivation, value: object, printer: KernelPrinter) -> Variant:
    model = derivation.model
    grads = derivation.gradients
    positions = {g.input.name: _positions(g.input.dims, model) for g in grads}
    out = _positions(model.output_dims, model)
    return Variant(
        value=repr(value),
        suffix="" if value is None else f"_{str(value).lower()}",
        shift=tuple(_shift(model, name, dim, printer) for name, dim in model.shift_invariant),
        forward=_function([Output("y", model.output)], printer, {"y": out}, model, lowering="output"),
        vjp=_function([Output(g.input.name, _centred(derivation, g.input.name, "vjp"), _wanted(model, g.input.name))
                       for g in grads],
                      printer, positions, model, lowering="cotangent"),
        jvp=_function([Output(g.input.name, _centred(derivation, g.input.name, "jvp"), f"{tangent_name(g.input.name)} is not None") for g in grads],
                      printer, {g.input.name: out for g in grads}, model, lowering="output"),
        vjp_jvp=_second(derivation, printer, positions),
    )


def _second(derivation: Derivation, printer: KernelPrinter, positions: dict[str, str]) -> Function:
    """``vjp_jvp``: one output per second-order term (input a along b's tangent), computed when a's
    gradient is wanted and b's tangent given; lowered like a vjp (each term is linear in dy)."""
    model = derivation.model
    outputs, tangents, inputs = [], {}, {}
    for g in derivation.gradients:
        terms = derivation.second_order(g.input.name)
        for term in terms:
            name, tangent = f"{g.input.name}/{term.by.name}", tangent_name(term.by.name)
            # one differentiable input (softmax): the compact form, as _centred; the norms' parameters'
            # compact forms held more temporaries (group_norm's gamma 6.5 -> 7.4x its input)
            product = _centred(derivation, g.input.name, "vjp_jvp") if len(derivation.gradients) == 1 else term.product
            outputs.append(Output(name, nest_sums(product), f"{_wanted(model, g.input.name)} and {tangent} is not None"))
            tangents[name], inputs[name] = tangent, g.input.name
    return _function(outputs, printer, {o.name: positions[inputs[o.name]] for o in outputs}, model,
                     lowering="second", tangents=tangents, inputs=inputs)


def _centred(derivation: Derivation, name: str, kind: str) -> sp.Expr:
    """The ``kind`` ("vjp", "jvp", "vjp_jvp") by input ``name`` from its compact form, where one
    writes the input through a named quantity (x_hat, y): centred values, not sum(dy x) - mu sum(dy);
    else the raw contraction."""
    raw = derivation.vjp_jvp(name) if kind == "vjp_jvp" else getattr(derivation.gradient(name), kind)
    if not derivation.rewriter.substitutions:  # no input to write through x_hat or y: the raw form
        return raw
    form = derivation.compact(name, kind)
    return form.written if form.through is not None else raw


def _into(out: str) -> str:
    """The ``out=`` of an in-place step: a new array as printed, or a dead temporary through the
    runtime's ``_into``, which passes it on only if it is an array (the temporaries of 0-d inputs
    are NumPy scalars, which no ufunc writes into)."""
    return f"_into({out})" if out.isidentifier() else out


def _wanted(model: OperatorModel, name: str) -> str:
    """The kernel's test that the caller passed input ``name`` (before defaults replace None) and
    wants its gradient (``wrt``): a gradient nobody asked for is not computed."""
    return f"wanted[{[i.name for i in model.inputs].index(name)}]"


def _runtime_frame(model: OperatorModel) -> tuple[str, ...]:
    """The core axes the runtime sees (none for elementwise: everything broadcasts)."""
    return () if model.layout.kind == "elementwise" else tuple(str(d) for d in model.dims())


def _positions(dims: tuple[sp.Expr, ...], model: OperatorModel) -> str:
    if model.layout.kind == "elementwise":
        return "()"
    frame = model.dims()
    return _tuple(frame.index(d) for d in dims)


def _default(inp, frame: tuple[str, ...], printer: KernelPrinter) -> str:
    if not frame:
        return repr(float(inp.default))
    return printer.full(_tuple(str(d) for d in inp.dims), float(inp.default))


def _shift(model: OperatorModel, name: str, dim: sp.Symbol, printer: KernelPrinter) -> Statement:
    dims = model.input(name).dims
    axis = dims.index(dim) - len(dims)
    return Statement(name, printer.shifted(name, axis))


def _tuple(items, quote: bool = False) -> str:
    """A Python tuple literal of ``items`` (their repr when ``quote``)."""
    parts = [repr(x) if quote else str(x) for x in items]
    return f"({parts[0]},)" if len(parts) == 1 else f"({', '.join(parts)})"


def _signature(model: OperatorModel) -> str:
    parts = [f"{i.name}=None" if i.optional else i.name for i in model.inputs]
    if model.params:
        parts.append("*")
        parts.extend(p.name if p.required else f"{p.name}={p.default!r}" for p in model.params)
    return ", ".join(parts)


def _arrays(model: OperatorModel) -> dict[str, ArraySpec]:
    arrays = {inp.name: ArraySpec(inp.name, inp.dims) for inp in model.inputs}
    for inp in model.inputs:
        arrays[tangent_name(inp.name)] = ArraySpec(tangent_name(inp.name), inp.dims)
    arrays[COTANGENT] = ArraySpec(COTANGENT, (), frame_form=True)
    return arrays


def _names(model: OperatorModel) -> dict[sp.Symbol, str]:
    names = {p.symbol: p.name for p in model.params if p.symbol is not None}
    names.update({d: str(d) for d in model.dims()})
    return names


def merge_dependent_sums(expr: sp.Expr) -> sp.Expr:
    """sum_e f_e (sum_j g_je) -> sum_e sum_j f_e g_je when the inner sum depends on e.

    The inner sum must be built for every e anyway; as one sum it becomes one einsum, which
    contracts in the best order instead of materialising the inner sum over all its free axes.
    """
    if not expr.args or not expr.has(sp.Sum):
        return expr
    expr = expr.func(*[merge_dependent_sums(arg) for arg in expr.args])
    if not isinstance(expr, sp.Sum):
        return expr
    own = set(bound_indices(expr))
    factors = list(sp.Mul.make_args(expr.function))
    for position, factor in enumerate(factors):
        if isinstance(factor, sp.Sum) and free_indices(factor) & own:
            taken = index_names(expr)
            inner, limits = factor.function, []
            for var, lower, upper in factor.limits:
                new = fresh_index(var, taken)
                taken.add(str(new.label))
                inner = substitute_index(inner, var, new)
                limits.append((new, lower, upper))
            rest = factors[:position] + factors[position + 1:]
            body = sp.Mul(*rest) * inner
            dims = [dim_of(i) for i in free_indices(body)]
            if len(dims) == len(set(dims)):  # merging must not couple two indices of one size
                return merge_dependent_sums(sp.Sum(body, *expr.limits, *limits))
    return expr


def by_axis(expr: sp.Expr, printer: KernelPrinter) -> sp.Expr:
    """Name every index after its axis, so CSE sees exp(x[j]) and exp(x[k]) as one array.

    Safe once no sum body and no result couples two indices of one size (checked first).
    """
    printer.check_separable(expr)
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Sum):
            printer.check_separable(node.function)
    return expr.xreplace({i: sp.Idx(f"{dim_of(i)}_", (i.lower, i.upper)) for i in expr.atoms(sp.Idx)})


def _function(outputs: list[Output], printer: KernelPrinter, positions: dict[str, str],
              model: OperatorModel, lowering: str, tangents: dict[str, str] | None = None,
              inputs: dict[str, str] | None = None) -> Function:
    """Print one kernel function.  ``lowering`` says which arrays are updated in place (see
    ``inplace.py``): "cotangent" (a vjp) those computed from the cotangent, "second" (a vjp_jvp) the
    same, its results marked ``owned`` for the runtime to add terms into, "output" (a forward, a
    jvp's terms) each result, built in a new array shaped like the output.  ``tangents`` (a vjp_jvp)
    maps each output to the tangent it needs (``tangents_private``), ``inputs`` to the input whose
    entry its block adds to (else the block's input is the output's name)."""
    outputs = [Output(o.name, by_axis(_stable_form(o.expr, model), printer), o.guard) for o in outputs]
    plan = schedule(outputs)
    if tangents is not None:
        plan = tangents_private(plan, tangents)
    guarded = frozenset(o.name for o in outputs if o.guard)
    owned = _owned_inputs(model, printer)
    if not printer.in_place:
        lowered = _as_scheduled(plan)
    elif lowering in ("cotangent", "second"):
        lowered = lower_in_place(plan, COTANGENT, owned, guarded, f"np.empty_like({COTANGENT})")
    else:  # no expression names the output: "<output>" is not an identifier
        spans = frozenset(free_indices(next(iter(plan.results.values()))))
        lowered = lower_in_place(plan, "<output>", owned, guarded, OUTPUT_ARRAY, spans)
    for step in (*lowered.prelude, *(s for own in lowered.own.values() for s in own)):
        printer.declare(step.symbol, step.expr)

    release = not printer.in_place  # every operation allocates: free each temporary after its last use

    def statements(steps, keep: set[str]) -> tuple[Statement, ...]:
        printed = [Statement(str(step.symbol), printer.print_into(step.expr, _into(step.out)) if step.out
                             else printer.doprint(step.expr), step.op) for step in steps]
        return _released(printed, steps, keep) if release else tuple(printed)

    def block(o: Output) -> Block:
        steps, result = lowered.own[o.name], lowered.results[o.name]
        freed = [n for n in _full_size(steps) if n in names_in(result)] if release else []
        return Block((inputs or {}).get(o.name, o.name), o.guard, statements(steps, names_in(result)),
                     printer.doprint(result), positions[o.name], _keywords(o.name, lowered, printer, lowering),
                     ", ".join(freed))

    later = set().union(*(names_in(step.expr) for own in lowered.own.values() for step in own),
                        *(names_in(result) for result in lowered.results.values()))
    return Function(prelude=statements(lowered.prelude, later), blocks=tuple(block(o) for o in outputs))


def _full_size(steps) -> list[str]:
    """The temporaries ``steps`` define that span an axis (per-row statistics and scalars are small)."""
    return list(dict.fromkeys(str(s.symbol) for s in steps if s.op == "=" and free_indices(s.expr)))


def _released(printed: list[Statement], steps, keep: set[str]) -> tuple[Statement, ...]:
    """``printed`` with ``del name`` after the last statement reading each full-size temporary the
    steps define, unless ``keep`` (what later code reads) names it."""
    last = {name: position for position, step in enumerate(steps) for name in names_in(step.expr)}
    out: list[Statement] = []
    dead = [[] for _ in steps]
    for name in _full_size(steps):
        if name not in keep and name in last:
            dead[last[name]].append(name)
    for statement, names in zip(printed, dead):
        out.append(statement)
        if names:
            out.append(Statement(f"del {', '.join(names)}", "", ""))
    return tuple(out)


@functools.lru_cache(maxsize=512)
def _stable_form(expr: sp.Expr, model: OperatorModel) -> sp.Expr:
    """``expr`` stabilised, its means refined and dependent sums merged: the same for every printer,
    so worked out once for the NumPy and the Array API view (the second order's are large)."""
    return merge_dependent_sums(refine_means(stabilize(expr, model), model))


def _keywords(name: str, lowered: Lowered, printer: KernelPrinter, lowering: str) -> str:
    """The extra keyword arguments of the runtime call that takes output ``name`` (see ``Block``)."""
    if not printer.in_place:  # a result that is an argument (or another result) as it is gets copied
        return ", copy=True" if isinstance(lowered.results[name], (sp.Indexed, sp.Symbol)) else ""
    if name in lowered.scales:
        return f", scale={printer.doprint(lowered.scales[name])}"
    return ", owned=True" if lowering in ("output", "second") and name in lowered.owned else ""


def _as_scheduled(plan: Scheduled) -> Lowered:
    """The schedule as it is, for a printer that updates nothing in place."""
    return _renumber(Lowered(tuple(Step(s, e) for s, e in plan.prelude),
                             {name: tuple(Step(s, e) for s, e in own) for name, own in plan.own.items()},
                             plan.results))


OUTPUT_ARRAY = "_new_output(ctx)"
"""Code for a new array shaped like the output (as the frame lays it out), to build a result in."""


def _owned_inputs(model: OperatorModel, printer: KernelPrinter) -> tuple[str, ...]:
    """Inputs the kernel shifts into a copy of its own and which sit on the frame as they are."""
    names = dict.fromkeys(name for name, _ in model.shift_invariant)
    return tuple(name for name in names if printer.place(name, model.input(name).dims) == name)
