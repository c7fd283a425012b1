"""Build the frozen, already-printed view of an array-code kernel (NumPy, Array API) that the
shared template ``templates/kernel/functions.py.jinja`` lays out.

The template receives strings only: signatures, statement lines, result expressions.  All the
decisions (which temporaries are shared, how arrays sit on the frame, which results are guarded
by an optional input, one set of functions per formula-selecting parameter value) are made here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy as sp

from ...calculus.compact import OUTPUT
from ...calculus.pipeline import COTANGENT, Derivation, tangent_name
from ...errors import LoweringError
from ...model import OperatorModel
from ...schedule.cse import Output
from ...schedule.nesting import nest_sums
from ...schedule.residuals import Saving, saving
from .contract import Contract, contract, positions, suffix
from .functions import Function, Statement, function
from .namespace import Namespace
from .printer import ArraySpec, FramePrinter


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
    statistics: Function | None = None
    """The statistics the forward saves besides y (one block each), in a kernel that saves them."""
    vjp_saved: Function | None = None
    """vjp from the saved residuals (``residuals.py``), in a kernel that saves some."""
    jvp_saved: Function | None = None
    vjp_jvp_saved: Function | None = None
    """vjp_jvp reading the saved residuals, where a second-order term's form reads them."""
    saved_names: str = ""
    """The residuals as the saved branches unpack them (``mu, sigma``)."""
    saved_dict: str = "{}"
    """The residuals forward(..., residuals=True) returns (a dict display)."""


@dataclass(frozen=True)
class KernelView(Contract):
    """Everything the kernel template lays out, as printed strings: the contract and the functions."""

    imports: tuple[str, ...]
    variants: tuple[Variant, ...]


def build_view(derivation: Derivation, printer_class: type[FramePrinter], ns: Namespace) -> KernelView:
    """The view of one operator's kernel, printed by ``printer_class`` against the namespace ``ns``."""
    model = derivation.model
    chosen = saving(derivation) if ns.residuals else None
    specs = array_specs(model)
    specs |= {s.name: ArraySpec(s.name, (), frame_form=True) for s in (chosen.saved if chosen else ())}
    printer = printer_class(model.dims(), specs, symbol_names(model))
    variants = tuple(_variant(d, value, printer, ns.residuals) for value, d in derivation.variants())
    saved = tuple((s.name, s.dims) for s in chosen.saved) if chosen else ()
    return contract(model, ns, saved).extended(KernelView, imports=tuple(sorted(printer.imports)), variants=variants)


def _variant(derivation: Derivation, value: object, printer: FramePrinter, residuals: bool) -> Variant:
    model = derivation.model
    grads = derivation.gradients
    places = {g.input.name: positions(g.input.dims, model) for g in grads}
    out = positions(model.output_dims, model)
    chosen = saving(derivation) if residuals else None
    return Variant(
        **(_saved_functions(derivation, chosen, printer, places) if chosen else {}),
        value=repr(value),
        suffix=suffix(value),
        shift=tuple(_shift(model, name, dim, printer) for name, dim in model.shift_invariant),
        forward=function([Output("y", model.output)], printer, {"y": out}, model, lowering="forward"),
        vjp=function([Output(g.input.name, centred(derivation, g.input.name, "vjp"), _wanted(model, g.input.name))
                      for g in grads], printer, places, model, lowering="cotangent"),
        jvp=function([Output(g.input.name, centred(derivation, g.input.name, "jvp"),
                             f"{tangent_name(g.input.name)} is not None") for g in grads],
                     printer, {g.input.name: out for g in grads}, model, lowering="output"),
        vjp_jvp=_second(derivation, printer, places),
    )


def _saved_functions(derivation: Derivation, chosen: Saving, printer: FramePrinter,
                     places: dict[str, str]) -> dict[str, Any]:
    """The statistics the forward saves, and vjp and jvp from the residuals (``residuals.py``):
    each gradient's form that reads them, the others as the kernel prints them without."""
    model = derivation.model
    grads = derivation.gradients
    out = positions(model.output_dims, model)
    stats = chosen.statistics()

    def form(name: str, kind: str) -> sp.Expr:
        return chosen.forms.get((name, kind)) or centred(derivation, name, kind)

    names = [s.name for s in chosen.saved]
    return dict(
        statistics=function([Output(s.name, s.definition) for s in stats], printer,
                            {s.name: positions(s.dims, model) for s in stats}, model, lowering="cotangent")
        if stats else None,
        vjp_saved=function([Output(g.input.name, form(g.input.name, "vjp"), _wanted(model, g.input.name))
                            for g in grads], printer, places, model, lowering="cotangent"),
        jvp_saved=function([Output(g.input.name, form(g.input.name, "jvp"), f"{tangent_name(g.input.name)} is not None")
                            for g in grads], printer, {g.input.name: out for g in grads}, model, lowering="output"),
        vjp_jvp_saved=_second_saved(derivation, printer, places, chosen),
        saved_names=", ".join(names) + ("," if len(names) == 1 else ""),
        saved_dict="{" + ", ".join(f"{n!r}: {'result_' if n == OUTPUT else 'saved_' + n}" for n in names) + "}",
    )


def _second(derivation: Derivation, printer: FramePrinter, places: dict[str, str],
            chosen: Saving | None = None) -> Function:
    """``vjp_jvp``: one output per second-order term (input a along b's tangent), computed when a's
    gradient is wanted and b's tangent given; lowered like a vjp (each term is linear in dy).  With
    ``chosen``: each term's form reading the saved residuals, where it has one."""
    model = derivation.model
    outputs, tangents, inputs = [], {}, {}
    for g in derivation.gradients:
        terms = derivation.second_order(g.input.name)
        for term in terms:
            name, tangent = f"{g.input.name}/{term.by.name}", tangent_name(term.by.name)
            # one differentiable input (softmax): the compact form, as centred; the norms' parameters'
            # compact forms held more temporaries (group_norm's gamma 6.5 -> 7.4x its input)
            product = centred(derivation, g.input.name, "vjp_jvp") if len(derivation.gradients) == 1 else term.product
            product = (chosen and chosen.second(g.input.name, term.by.name)) or nest_sums(product)
            guard = f"{_wanted(model, g.input.name)} and {tangent} is not None"
            outputs.append(Output(name, product, guard))
            tangents[name], inputs[name] = tangent, g.input.name
    return function(outputs, printer, {o.name: places[inputs[o.name]] for o in outputs}, model,
                    lowering="second", tangents=tangents, inputs=inputs)


def _second_saved(derivation: Derivation, printer: FramePrinter, places: dict[str, str],
                  chosen: Saving) -> Function | None:
    """vjp_jvp reading the residuals, where a term's form reads them and the printer takes it (one it
    refuses, an n x n array: None, and vjp_jvp recomputes from the inputs)."""
    if not chosen.reads_second:
        return None
    try:
        return _second(derivation, printer, places, chosen)
    except LoweringError:
        return None


def centred(derivation: Derivation, name: str, kind: str) -> sp.Expr:
    """The ``kind`` ("vjp", "jvp", "vjp_jvp") by input ``name`` from its compact form, where one
    writes the input through a named quantity (x_hat, y): centred values, not sum(dy x) - mu sum(dy);
    else the raw contraction."""
    raw = derivation.vjp_jvp(name) if kind == "vjp_jvp" else getattr(derivation.gradient(name), kind)
    if not derivation.rewriter.substitutions:  # no input to write through x_hat or y: the raw form
        return raw
    form = derivation.compact(name, kind)
    return form.written if form.through is not None else raw


def _wanted(model: OperatorModel, name: str) -> str:
    """The kernel's test that the caller passed input ``name`` (before defaults replace None) and
    wants its gradient (``wrt``): a gradient nobody asked for is not computed."""
    return f"wanted[{[i.name for i in model.inputs].index(name)}]"


def _shift(model: OperatorModel, name: str, dim: sp.Symbol, printer: FramePrinter) -> Statement:
    dims = model.input(name).dims
    axis = dims.index(dim) - len(dims)
    return Statement(name, printer.shifted(name, axis))


def array_specs(model: OperatorModel) -> dict[str, ArraySpec]:
    """The arrays a kernel function reads: the inputs, their tangents and the cotangent."""
    arrays = {inp.name: ArraySpec(inp.name, inp.dims) for inp in model.inputs}
    for inp in model.inputs:
        arrays[tangent_name(inp.name)] = ArraySpec(tangent_name(inp.name), inp.dims)
    arrays[COTANGENT] = ArraySpec(COTANGENT, (), frame_form=True)
    return arrays


def symbol_names(model: OperatorModel) -> dict[sp.Symbol, str]:
    """The kernel's name of each size and parameter symbol."""
    names = {p.symbol: p.name for p in model.params if p.symbol is not None}
    names.update({d: str(d) for d in model.dims()})
    return names
