"""The operator catalogue as text: how each operator's inputs are shaped, and the README table."""

from __future__ import annotations

from . import registry
from .operator import Input, OperatorModel

LAYOUT_SHAPES = {
    "elementwise": "any shape (broadcast)",
    "flatten": "any shape (broadcast)",
    "axis": "any shape, along `axis`",
}


def input_shape(model: OperatorModel, inp: Input) -> str:
    """How a caller shapes ``inp``: `x[..., n]`, `x[N, C, *spatial]`, or a layout's description."""
    kind = model.layout.kind
    if kind in LAYOUT_SHAPES:
        return f"`{inp.name}` ({LAYOUT_SHAPES[kind]})"
    if kind in ("channels", "groups"):
        shape = "N, C, *spatial" if inp is model.inputs[0] else "C"
    else:
        shape = ", ".join(([] if inp.optional else ["..."]) + [str(d) for d in inp.dims])
    mark = "?" if inp.optional else ""
    integer = " (integer labels)" if inp.domain == "index" else ""
    return f"`{inp.name}[{shape}]`{mark}{integer}"


def parameters(model: OperatorModel) -> str:
    parts = []
    for p in model.params:
        if p.required:
            parts.append(f"`{p.name}` (required)")
        elif p.choices:
            parts.append(f"`{p.name}={p.default!r}` ({' or '.join(map(repr, p.choices))})")
        else:
            parts.append(f"`{p.name}={p.default!r}`")
    return ", ".join(parts)


def markdown_table() -> str:
    """One row per registered operator: name, category, inputs, parameters, PyTorch counterpart."""
    rows = ["| operator | category | inputs | parameters | matches |", "| --- | --- | --- | --- | --- |"]
    for name in registry.names():
        model = registry.get(name)
        inputs = ", ".join(input_shape(model, i) for i in model.inputs)
        rows.append(f"| `{name}` | {model.category} | {inputs} | {parameters(model)} | `{model.torch}` |")
    return "\n".join(rows) + "\n"
