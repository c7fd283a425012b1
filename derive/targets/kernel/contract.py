"""What every Python kernel of an operator says alike, as printed strings: its signature, inputs,
parameters, frame and layout (what the runtime checks and lays out), and its module docstring.

The NumPy, Array API and numba views extend ``Contract`` with the functions they print.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import sympy as sp

from ...calculus.pipeline import Derivation
from ...model import OperatorModel, domains
from ...schedule.residuals import Saved, saving
from ...version import __version__
from ..base import docstring_text, regenerate_command
from .namespace import Namespace

V = TypeVar("V", bound="Contract")


@dataclass(frozen=True)
class Contract:
    """A kernel's interface and runtime constants (``templates/kernel/module.py.jinja``)."""

    ns: Namespace
    name: str
    summary: str
    inputs: tuple[str, ...]
    differentiable: str
    optional: tuple[tuple[str, str], ...]
    """Each optional input and the code of its default (filled in after the layout)."""
    index_inputs: str
    core_axes: str
    params: str
    signature: str
    vjp_signature: str
    """The signature with ``wrt=None`` (keyword-only): the inputs whose gradients the caller wants;
    ``residuals=None`` and ``out=None`` too."""
    forward_signature: str
    """The signature with ``residuals=False`` and ``out=None``."""
    jvp_signature: str
    """The signature with ``residuals=None`` and ``out=None``."""
    residuals: str
    """The names ``forward(..., residuals=True)`` saves for the backward (a tuple literal)."""
    saved_axes: str
    """Each residual's core axes (a dict literal): a statistic's, or the output's for ``y``."""
    gradients: tuple[tuple[str, int, str], ...]
    """Each differentiable input: its name, its place in ``INPUTS``, its frame positions."""
    call: str
    input_tuple: str
    input_list: str
    layout: str
    layout_options: str
    frame: str
    sizes: tuple[str, ...]
    literal_axes: bool
    """Some core axis has a literal length (1): the runtime checks the arrays have it."""
    output_axes: str
    output_positions: str
    dispatch: str
    """The formula-selecting parameter (one set of functions per value), or nothing."""
    choices: str
    chosen: str
    """The code of the functions for the value called with (``_VARIANTS[...]``), or nothing."""

    def extended(self, view: type[V], **more: Any) -> V:
        """A ``view`` (a subclass adding the functions a target prints) holding this contract."""
        return view(**{f.name: getattr(self, f.name) for f in fields(Contract)}, **more)


def contract(model: OperatorModel, ns: Namespace, saved: tuple[tuple[str, tuple], ...] = ()) -> Contract:
    """The contract of ``model``'s kernel calling the namespace ``ns``; ``saved``: the residuals
    (name, core axes) its forward saves (``residuals.py``), in a kernel that takes them."""
    choice = next((p for p in model.params if p.choices), None)
    frame = runtime_frame(model)
    names = [inp.name for inp in model.inputs]
    return Contract(
        ns=ns,
        name=model.name,
        summary=model.summary,
        inputs=tuple(names),
        differentiable=tuple_literal((i.name for i in model.differentiable_inputs), quote=True),
        optional=tuple((i.name, _default(i, frame, ns)) for i in model.inputs if i.optional),
        index_inputs=repr({i.name: str(i.index_of) for i in model.inputs if i.domain == "index"}),
        core_axes=repr({i.name: tuple(str(d) for d in i.dims) if frame else () for i in model.inputs}),
        params=repr({p.name: None if p.required else p.default for p in model.params}),
        signature=_signature(model),
        vjp_signature=_keywords(model, "wrt=None", *_training(ns, "None")),
        forward_signature=_keywords(model, *_training(ns, "False")),
        jvp_signature=_keywords(model, *_training(ns, "None")),
        residuals=tuple_literal((name for name, _ in saved), quote=True) if saved else "()",
        saved_axes=repr({name: tuple(str(d) for d in dims) for name, dims in saved}),
        gradients=tuple((i.name, names.index(i.name), positions(i.dims, model)) for i in model.differentiable_inputs),
        call=", ".join(names + [f"{p.name}={p.name}" for p in model.params]),
        input_tuple=tuple_literal(names),
        input_list=", ".join(names),
        layout=model.layout.kind,
        layout_options="{" + ", ".join(f"{p!r}: {p}" for p in (model.layout.param, model.layout.keepdims) if p) + "}",
        frame=tuple_literal(frame, quote=True),
        sizes=tuple(axis for axis in frame if axis.isidentifier()),  # a literal axis (1) binds no name
        literal_axes=any(not axis.isidentifier() for axis in frame),
        output_axes=tuple_literal((str(d) for d in model.output_dims), quote=True) if frame else "()",
        output_positions=positions(model.output_dims, model),
        dispatch=choice.name if choice else "",
        choices=tuple_literal(choice.choices, quote=True) if choice else "()",
        chosen=f"_VARIANTS[_choose({choice.name!r}, {choice.name}, {tuple_literal(choice.choices, quote=True)})]"
        if choice else "",
    )


def header(derivation: Derivation, template: str) -> str:
    """The kernel's module docstring; model text in it is escaped (``docstring_text``)."""
    model = derivation.model
    lines = [
        f"{model.name}: {model.summary}.",
        "",
        f"Generated by derive {__version__} from {model.source} with templates/{template} "
        f"(SymPy {sp.__version__}).",
        f"Do not edit: regenerate with `{regenerate_command(model)}`.",
        "",
        f"    y{list(model.output_indices)} = {model.output}",
    ]
    declared = [f"{i.name} {domains.describe(i.domain)}" for i in model.inputs if i.domain not in ("real", "index")]
    declared += [f"{p.name} {domains.describe(p.domain)}" for p in model.params if p.domain is not None]
    if declared:
        lines += ["", f"Defined (and proved) for: {'; '.join(declared)}."]
    if model.torch:
        lines += ["", f"Matches {model.torch}."]
    chosen = saving(derivation)
    if chosen is not None:
        lines += ["", "Saved for the backward (forward(..., residuals=True); vjp and jvp read them): "
                  + "; ".join(_described(s) for s in chosen.saved) + "."]
    return '"""' + docstring_text("\n".join(lines)) + '\n"""'


def _described(saved: Saved) -> str:
    if saved.name == "y":
        return "y, the output"
    axes = f" + ({', '.join(map(str, saved.dims))}{',' if len(saved.dims) == 1 else ''})" if saved.dims else ""
    return f"{saved.name} = {sp.sstr(saved.definition)} (shape: the batch axes{axes})"


def suffix(value: object) -> str:
    """The name suffix of the functions for one value of the formula-selecting parameter."""
    return "" if value is None else f"_{str(value).lower()}"


def runtime_frame(model: OperatorModel) -> tuple[str, ...]:
    """The core axes the runtime sees (none for elementwise: everything broadcasts)."""
    return () if model.layout.kind == "elementwise" else tuple(str(d) for d in model.dims())


def positions(dims: tuple[sp.Expr, ...], model: OperatorModel) -> str:
    """The frame positions of axes ``dims`` (a tuple literal; elementwise: none)."""
    if model.layout.kind == "elementwise":
        return "()"
    frame = model.dims()
    return tuple_literal(frame.index(d) for d in dims)


def tuple_literal(items: Iterable[object], quote: bool = False) -> str:
    """A Python tuple literal of ``items`` (their repr when ``quote``)."""
    parts = [repr(x) if quote else str(x) for x in items]
    return f"({parts[0]},)" if len(parts) == 1 else f"({', '.join(parts)})"


def _default(inp, frame: tuple[str, ...], ns: Namespace) -> str:
    if not frame:
        return repr(float(inp.default))
    return ns.full(tuple_literal(str(d) for d in inp.dims), float(inp.default))


def _training(ns: Namespace, residuals: str) -> tuple[str, ...]:
    """The keywords of a kernel that saves residuals (``residuals`` their default) and writes into
    caller-owned buffers, as far as its namespace does."""
    return (f"residuals={residuals}",) * ns.residuals + ("out=None",) * ns.buffers


def _keywords(model: OperatorModel, *keywords: str) -> str:
    """The signature with keyword-only ``keywords`` after the parameters."""
    if not keywords:
        return _signature(model)
    return _signature(model) + (", " if model.params else ", *, ") + ", ".join(keywords)


def _signature(model: OperatorModel) -> str:
    parts = [f"{i.name}=None" if i.optional else i.name for i in model.inputs]
    if model.params:
        parts.append("*")
        parts.extend(p.name if p.required else f"{p.name}={p.default!r}" for p in model.params)
    return ", ".join(parts)
