"""Build the frozen, already-printed view of a NumPy kernel that the Jinja template lays out.

The template receives strings only: signatures, statement lines, result expressions.  All the
decisions (which temporaries are shared, how arrays sit on the frame, which outputs are guarded
by an optional input) are made here, in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..calculus.pipeline import COTANGENT, Derivation, tangent_name
from ..model import OperatorModel, dim_of
from .inplace import in_place, plain
from .numpy_printer import ArraySpec, KernelPrinter, LoweringError
from .schedule import Output, schedule


@dataclass(frozen=True)
class Statement:
    target: str
    code: str
    op: str = "="


@dataclass(frozen=True)
class Block:
    """Statements computing one result; ``guard`` names what must be present to compute it."""

    input: str
    guard: str | None
    statements: tuple[Statement, ...]
    result: str
    positions: str
    """Frame positions of the result's axes (a Python tuple literal)."""
    scale: str = ""
    """``, scale=<per-row factor>`` when the runtime applies the result's last factor."""


@dataclass(frozen=True)
class Function:
    prelude: tuple[Statement, ...]
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class KernelView:
    """Everything the kernel template lays out, as printed strings."""

    name: str
    summary: str
    inputs: tuple[str, ...]
    optional: tuple[tuple[str, str], ...]
    """(name, value it takes when None) for each optional input."""
    differentiable: tuple[str, ...]
    core_axes: str
    """Python literal: input name -> names of its core axes."""
    params: str
    signature: str
    input_tuple: str
    input_list: str
    layout_arg: str
    frame: tuple[str, ...]
    output_axes: str
    output_positions: str
    shift: tuple[tuple[str, str], ...]
    forward: Function
    vjp: Function
    jvp: Function


def build_view(derivation: Derivation) -> KernelView:
    model = derivation.model
    frame = model.dims()
    printer = KernelPrinter(frame, _arrays(model, frame), _names(model))
    names = [inp.name for inp in model.inputs]
    out_positions = _tuple(frame.index(d) for d in model.output_dims)
    return KernelView(
        name=model.name,
        summary=model.summary,
        inputs=tuple(names),
        optional=tuple((i.name, repr(float(i.default))) for i in model.inputs if i.optional),
        differentiable=tuple(i.name for i in model.differentiable_inputs),
        core_axes=repr({i.name: tuple(str(d) for d in i.dims) for i in model.inputs}),
        params=repr({p.name: p.default for p in model.params}),
        signature=_signature(model),
        input_tuple=_tuple(names),
        input_list=", ".join(names),
        layout_arg=f", {model.layout.param}" if model.layout.kind == "axis" else "",
        frame=tuple(str(d) for d in frame),
        output_axes=_tuple((str(d) for d in model.output_dims), quote=True),
        output_positions=out_positions,
        shift=tuple((name, _tuple(range(-len(model.input(name).dims), 0))) for name in model.shift_invariant),
        forward=_function([Output("y", model.output)], printer, {"y": out_positions}),
        vjp=_function(
            [Output(g.input.name, g.vjp, g.input.name if g.input.optional else None) for g in derivation.gradients],
            printer, {g.input.name: _tuple(frame.index(d) for d in g.input.dims) for g in derivation.gradients},
            in_place_from=COTANGENT, owned=_owned_inputs(model, printer)),
        jvp=_function(
            [Output(g.input.name, g.jvp, tangent_name(g.input.name)) for g in derivation.gradients],
            printer, {g.input.name: out_positions for g in derivation.gradients}),
    )


def _tuple(items, quote: bool = False) -> str:
    """A Python tuple literal of ``items`` (their repr when ``quote``)."""
    parts = [repr(x) if quote else str(x) for x in items]
    return f"({parts[0]},)" if len(parts) == 1 else f"({', '.join(parts)})"


def _signature(model: OperatorModel) -> str:
    parts = [f"{i.name}=None" if i.optional else i.name for i in model.inputs]
    if model.params:
        parts.append("*")
        parts.extend(f"{p.name}={p.default!r}" for p in model.params)
    return ", ".join(parts)


def _arrays(model: OperatorModel, frame: tuple[sp.Expr, ...]) -> dict[str, ArraySpec]:
    arrays = {inp.name: ArraySpec(inp.name, inp.dims) for inp in model.inputs}
    for inp in model.inputs:
        arrays[tangent_name(inp.name)] = ArraySpec(tangent_name(inp.name), inp.dims)
    arrays[COTANGENT] = ArraySpec(COTANGENT, model.output_dims)
    for inp in model.inputs:
        positions = [frame.index(d) for d in inp.dims]
        placed = positions == list(range(len(frame) - len(positions), len(frame)))
        if inp.optional and not placed:
            raise LoweringError(f"optional input {inp.name!r} must span the last core axes in order")
    return arrays


def _names(model: OperatorModel) -> dict[sp.Symbol, str]:
    names = {p.symbol: p.name for p in model.params if p.symbol is not None}
    names.update({d: str(d) for d in model.dims()})
    return names


def by_axis(expr: sp.Expr, printer: KernelPrinter) -> sp.Expr:
    """Name every index after its axis, so CSE sees exp(x[j]) and exp(x[k]) as one array.

    Safe once no sum body and no result couples two indices of one size (checked first).
    """
    printer.check_separable(expr)
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Sum):
            printer.check_separable(node.function)
    return expr.xreplace({i: sp.Idx(f"{dim_of(i)}_", (i.lower, i.upper)) for i in expr.atoms(sp.Idx)})


def _owned_inputs(model: OperatorModel, printer: KernelPrinter) -> tuple[str, ...]:
    """Inputs the kernel shifts into a copy of its own, and which sit on the frame as they are."""
    return tuple(name for name in model.shift_invariant
                 if printer.place(name, model.input(name).dims) == name)


def _function(outputs: list[Output], printer: KernelPrinter, positions: dict[str, str],
              in_place_from: str | None = None, owned: tuple[str, ...] = ()) -> Function:
    """Print one kernel function; arrays computed from ``in_place_from`` are updated in place."""
    outputs = [Output(o.name, by_axis(o.expr, printer), o.guard) for o in outputs]
    guarded = frozenset(o.name for o in outputs if o.guard)
    plan = in_place(schedule(outputs), in_place_from, owned, guarded) if in_place_from else plain(schedule(outputs))
    frame_temps = {str(step.symbol) for step in (*plan.prelude, *(s for own in plan.own.values() for s in own))}
    printer.arrays.update({name: ArraySpec(name, (), frame_form=True) for name in frame_temps})

    def statements(steps) -> tuple[Statement, ...]:
        return tuple(Statement(str(step.symbol), printer.print_into(step.expr, step.out) if step.out
                               else printer.doprint(step.expr), step.op) for step in steps)

    blocks = tuple(
        Block(o.name, o.guard, statements(plan.own[o.name]), printer.doprint(plan.results[o.name]),
              positions[o.name], f", scale={printer.doprint(plan.scales[o.name])}" if o.name in plan.scales else "")
        for o in outputs
    )
    return Function(prelude=statements(plan.prelude), blocks=blocks)
