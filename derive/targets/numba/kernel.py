"""Build the view of a numba kernel: the shared kernel contract (``derive/targets/kernel/``) against
NumPy, plus one compiled loop function per kernel function (forward, vjp, jvp, vjp_jvp) and per
value of a formula-selecting parameter.

The Python functions around the loops check and lay out the inputs with the shared NumPy runtime
(``templates/kernel/``); the loops are printed from the shared schedule (``loops.py`` plans,
``printer.py`` prints).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import sympy as sp

from ...calculus.pipeline import COTANGENT, Derivation, tangent_name
from ...errors import LoweringError
from ...model import OperatorModel
from ...model.functions import max_over
from ...schedule.cse import Output, schedule
from ...schedule.nesting import nest_sums
from ...schedule.residuals import Saving, saving
from ...schedule.stable import stabilize
from ..kernel import (
    NUMPY,
    Contract,
    axis_variable,
    by_axis,
    centred,
    contract,
    positions,
    suffix,
    symbol_names,
    tuple_literal,
)
from . import loops
from .printer import LoopPrinter, body

SHIFTED = "_shifted"
"""Suffix of a shift-invariant input's per-unit maximum (the NumPy kernel subtracts it in place)."""


@dataclass(frozen=True)
class Array:
    """An array argument of the loops: its name, frame positions (code) and the axes it spans (code)."""

    name: str
    positions: str
    spans: str
    index: bool = False
    """Integer class indices (passed as int64), not floating-point values."""


@dataclass(frozen=True)
class Out:
    name: str
    spans: str
    positions: str
    accumulate: bool
    adds: bool
    guard: str
    options: str
    """The runtime's keyword arguments for the result array: the rows a gradient added into has (its
    input's), whether it is wanted at all."""
    input: int | None = None
    """A gradient's input's position in ``INPUTS`` (its flag in vjp's ``wanted``); None for ``y``."""


@dataclass(frozen=True)
class Loop:
    name: str
    args: str
    units: str
    params: str
    body: tuple[str, ...]
    outs: tuple[Out, ...]
    call: str
    """The arguments after the sizes and parameters: laid-out arrays, result arrays, their modes, flags."""


@dataclass(frozen=True)
class LoopVariant:
    value: str
    suffix: str
    forward: Loop
    vjp: Loop
    jvp: Loop
    vjp_jvp: Loop
    shift: tuple = ()
    """The shared ``prepare`` shifts nothing: the loops subtract the maximum as they read."""
    forward_saved: Loop | None = None
    """forward writing the statistics it saves besides y (``residuals.py``), where it saves some."""
    vjp_saved: Loop | None = None
    """vjp and jvp reading the saved residuals, where the kernel saves some."""
    jvp_saved: Loop | None = None
    vjp_jvp_saved: Loop | None = None
    """vjp_jvp reading the saved residuals, where a second-order term's form reads them."""
    saved: tuple[Array, ...] = ()
    """The saved residuals as the loops take them."""
    saved_names: str = ""
    saved_dict: str = "{}"


@dataclass(frozen=True)
class NumbaView(Contract):
    """The kernel's contract, its arrays as the loops take them, and its loop functions."""

    arrays: tuple[Array, ...]
    dy: Array
    tangents: tuple[Array, ...]
    loops: tuple[LoopVariant, ...]


def build_view(derivation: Derivation) -> NumbaView:
    model = derivation.model
    frame = model.dims()
    chosen = saving(derivation)
    saved = tuple((s.name, s.dims) for s in chosen.saved) if chosen else ()
    return contract(model, NUMPY, saved).extended(
        NumbaView,
        arrays=tuple(_array(model, i.name, i.dims) for i in model.inputs),
        dy=_array(model, COTANGENT, model.output_dims),
        tangents=tuple(_array(model, tangent_name(i.name), i.dims) for i in model.inputs),
        loops=tuple(_loop_variant(d, value, frame) for value, d in derivation.variants()),
    )


def _array(model: OperatorModel, name: str, dims) -> Array:
    index = any(i.name == name and i.domain == "index" for i in model.inputs)
    return Array(name, positions(dims, model), _spans(model, dims), index)


def _spans(model: OperatorModel, dims) -> str:
    if model.layout.kind == "elementwise":
        return "(True,)"  # every input is read at every entry (broadcast first if need be)
    return tuple_literal(d in dims for d in model.dims())


def _loop_variant(derivation: Derivation, value, frame) -> LoopVariant:
    model = derivation.model
    grads = derivation.gradients
    want = {g.input.name: f"want_{g.input.name}" for g in grads}  # vjp(..., wrt=): the gradients asked for
    tangents = [tangent_name(i.name) for i in model.inputs]
    end = suffix(value)
    return LoopVariant(
        **_saved_loops(derivation, end),
        value=repr(value),
        suffix=end,
        forward=_loop(model, f"_forward_loops{end}", [("y", [Output("y", model.output)], model.output_dims, None)]),
        vjp=_loop(model, f"_vjp_loops{end}",
                  [(g.input.name, [Output(g.input.name, centred(derivation, g.input.name, "vjp"), want[g.input.name])],
                    g.input.dims, want[g.input.name]) for g in grads], extra=[COTANGENT]),
        jvp=_loop(model, f"_jvp_loops{end}",
                  [("y", [Output(g.input.name, centred(derivation, g.input.name, "jvp"), f"has_{g.input.name}")
                          for g in grads], model.output_dims, None)], extra=tangents),
        vjp_jvp=_loop(model, f"_vjp_jvp_loops{end}", [
            (g.input.name, [Output(f"{g.input.name}/{t.by.name}", nest_sums(t.product),
                                   f"{want[g.input.name]} and has_{t.by.name}")
                            for t in derivation.second_order(g.input.name)], g.input.dims, want[g.input.name])
            for g in grads], extra=[COTANGENT, *tangents]),
    )


def _saved_loops(derivation: Derivation, end: str) -> dict[str, Any]:
    """The forward that writes the saved statistics, and vjp and jvp reading the residuals."""
    chosen = saving(derivation)
    if chosen is None:
        return {}
    model = derivation.model
    grads = derivation.gradients
    dims = {s.name: s.dims for s in chosen.saved}
    names = list(dims)
    stats = chosen.statistics()

    def form(name: str, kind: str) -> sp.Expr:
        return chosen.forms.get((name, kind)) or centred(derivation, name, kind)

    tangents = [tangent_name(i.name) for i in model.inputs]
    return dict(
        forward_saved=_loop(model, f"_forward_saved_loops{end}", [
            ("y", [Output("y", model.output)], model.output_dims, None),
            *((s.name, [Output(s.name, s.definition)], s.dims, None) for s in stats)]) if stats else None,
        vjp_saved=_loop(model, f"_vjp_saved_loops{end}",
                        [(g.input.name, [Output(g.input.name, form(g.input.name, "vjp"), f"want_{g.input.name}")],
                          g.input.dims, f"want_{g.input.name}") for g in grads], extra=[COTANGENT, *names], saved=dims),
        jvp_saved=_loop(model, f"_jvp_saved_loops{end}",
                        [("y", [Output(g.input.name, form(g.input.name, "jvp"), f"has_{g.input.name}") for g in grads],
                          model.output_dims, None)], extra=[*tangents, *names], saved=dims),
        vjp_jvp_saved=_second_saved(derivation, chosen, end),
        saved=tuple(_array(model, s.name, s.dims) for s in chosen.saved),
        saved_names=", ".join(names) + ("," if len(names) == 1 else ""),
        saved_dict="{" + ", ".join(f"{n!r}: " + ("result_" if n == "y" else f"_statistic(out_{n}.value(), {n!r}, ctx)")
                                   for n in names) + "}",
    )


def _second_saved(derivation: Derivation, chosen: Saving, end: str) -> Loop | None:
    """vjp_jvp reading the residuals, where a term's form reads them and the loops take it (one they
    refuse: None, and vjp_jvp recomputes from the inputs)."""
    if not chosen.reads_second:
        return None
    model = derivation.model
    dims = {s.name: s.dims for s in chosen.saved}
    tangents = [tangent_name(i.name) for i in model.inputs]
    results: list[tuple[str, list[Output], tuple, str | None]] = [
        (g.input.name, [Output(f"{g.input.name}/{t.by.name}",
                               chosen.second(g.input.name, t.by.name) or nest_sums(t.product),
                               f"want_{g.input.name} and has_{t.by.name}")
                        for t in derivation.second_order(g.input.name)], g.input.dims, f"want_{g.input.name}")
        for g in derivation.gradients]
    try:
        return _loop(model, f"_vjp_jvp_saved_loops{end}", results, extra=[COTANGENT, *tangents, *dims], saved=dims)
    except LoweringError:
        return None


def _loop(model: OperatorModel, name: str, results: list[tuple[str, list[Output], tuple, str | None]],
          extra=(), saved: dict | None = None) -> Loop:
    """One compiled function: the results' expressions scheduled, inlined, planned and printed.  Each
    result: its name, its terms (each under its flags), its axes, and the flag it is computed under."""
    frame = model.dims()
    outputs = [o for _, outs, _, _ in results for o in outs]
    scheduled = schedule([Output(o.name, by_axis(_shift(stabilize(o.expr, model), model)), o.guard)
                          for o in outputs])
    inlined = loops.inline(scheduled.prelude, scheduled.own, scheduled.results)
    plan = loops.plan([(result, [loops.Term(inlined[o.name], o.guard) for o in outs], dims)
                       for result, outs, dims, _ in results], frame)
    optional = {i.name for i in model.inputs if i.optional}
    guards = {result: guard for result, _, _, guard in results}
    plan = dataclasses.replace(plan, results=tuple(
        dataclasses.replace(r, adds=r.accumulate or r.name in optional, guard=guards[r.name]) for r in plan.results))
    arrays = {i.name: i.dims for i in model.inputs}
    arrays |= {tangent_name(i.name): i.dims for i in model.inputs}
    arrays[COTANGENT] = model.output_dims
    arrays |= saved or {}
    sizes = {d: str(d) for d in frame}
    printer = LoopPrinter(frame, arrays, symbol_names(model))
    names = [i.name for i in model.inputs] + list(extra)
    lines = body(plan, printer, sizes, names)
    params = [p.name for p in model.params if p.symbol is not None]
    declared = {result: dims for result, _, dims, _ in results}
    inputs = [i.name for i in model.inputs]
    outs = tuple(Out(r.name, _spans(model, r.dims), positions(declared[r.name], model), r.accumulate, r.adds,
                     r.guard or "", _options(r), inputs.index(r.name) if r.name in inputs else None)
                 for r in plan.results)
    guarded = [r.guard for r in plan.results] + [t.guard for r in plan.results for t in r.terms]
    flags = sorted({flag for guard in guarded if guard for flag in guard.split(" and ")})
    lengths = (str(d) if str(d).isidentifier() else f"length{d}_" for d in frame)  # a literal axis: its own
    args = ["c_", "p_", "P_", "aligned_", "R_", "lo_", *lengths, *params, *names,
            *(f"out_{o.name}" for o in outs), *(f"acc_{o.name}" for o in outs), *flags]
    units = tuple_literal(frame.index(d) for d in plan.units) if plan.units else "()"
    return Loop(name=name, args=", ".join(args), units=units,
                params="".join(f", {p}" for p in params), body=tuple(lines), outs=outs,
                call=", ".join([*(f"{n}_" for n in names), *(f"out_{o.name}.array" for o in outs),
                                *(f"out_{o.name}.accumulate" for o in outs), *flags]))


def _options(result: loops.Result) -> str:
    rows = f", rows={result.name}_.shape[0]" if result.adds and result.name != "y" else ""  # y: the output's rows
    return rows + (f", wanted={result.guard}" if result.guard else "")


def _shift(expr: sp.Expr, model: OperatorModel) -> sp.Expr:
    """A shift-invariant input read as x - max(x) along its axis (the NumPy kernel's in-place shift)."""
    for name, dim in model.shift_invariant:
        dims = model.input(name).dims
        indices = [sp.Idx(f"{axis_variable(d)}shift", (0, d - 1)) for d in dims]
        column = indices[dims.index(dim)]
        base = sp.IndexedBase(name)
        maximum = max_over(base[tuple(indices)], column)

        def shifted(node: sp.Indexed, indices=indices, column=column, maximum=maximum) -> sp.Expr:
            mapping = {i: j for i, j in zip(indices, node.indices) if i != column}
            return node - maximum.xreplace(mapping)

        expr = expr.replace(lambda e, base=base: isinstance(e, sp.Indexed) and e.base == base, shifted)
    return expr
