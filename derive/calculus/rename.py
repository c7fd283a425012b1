"""The user's names kept apart from the notation's: an input, parameter or intermediate whose name
the derivation or a kernel already uses (``y`` the output, ``dy`` the cotangent, ``dot_x`` a tangent,
``x_hat``, ``np``, ``ctx``, a temporary ``t0``, a Python builtin) is renamed (``y1``) before anything
is derived, so every target and ``derive show`` read one meaning per name.  ``renamed`` says which.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterator
from dataclasses import replace

import sympy as sp

from ..model import OperatorModel, ScalarEntry

NOTATION = {"y", "dy", "x_hat", "xhat", "cotangent", "tangents", "wrt"}
"""The output, its cotangent, the compact forms' placeholders and the kernels' own arguments."""
CODE = {"np", "xp", "math", "numba", "special", "scipy", "ctx", "total", "terms", "grads", "wanted", "given",
        "forward", "vjp", "jvp", "vjp_jvp", "INPUTS", "DIFFERENTIABLE", "PARAMS"}
"""Names a kernel's functions read besides the inputs: modules, locals, its own functions, constants."""
PATTERN = re.compile(r"(dot|want|has|out|acc)_.*|[ts]\d+|_.*|.*_|k\d+_?")
"""Tangents (``dot_x``), the numba kernels' flags and buffers, temporaries (``t0``, ``s1``) and the
names a kernel makes with a leading or trailing underscore."""


def reserved(name: str) -> bool:
    return name in NOTATION or name in CODE or name in vars(builtins) or bool(PATTERN.fullmatch(name))


def renamed(model: OperatorModel) -> dict[str, str]:
    """User name -> the name the derivation uses, for each name that would clash (often empty)."""
    names = [i.name for i in model.inputs] + [p.name for p in model.params] + [n for n, _ in model.where]
    taken = set(names) | {str(d) for d in model.dims()} | {str(i) for i in model.output_indices}
    mapping: dict[str, str] = {}
    for name in names:
        if reserved(name):
            used = taken | set(mapping.values())
            mapping[name] = next(c for c in _candidates(name) if c not in used and not reserved(c))
    return mapping


def _candidates(name: str) -> Iterator[str]:
    """y1, y2, ... then v1_y, ...: never name_1, which reads as an entry of an array (x_1 of x)."""
    for k in range(1, 1000):
        yield f"{name}{k}"
    for k in range(1, 1000):
        yield f"v{k}_{name}"


def without_clashes(model: OperatorModel) -> OperatorModel:
    """``model`` with the names ``renamed`` gives replaced everywhere (itself when none clash)."""
    mapping = renamed(model)
    if not mapping:
        return model
    swap: dict[sp.Basic, sp.Basic] = {}
    for inp in model.inputs:
        if inp.name in mapping:
            new = sp.IndexedBase(mapping[inp.name])
            swap.update({inp.base: new, ScalarEntry(inp.base): ScalarEntry(new)})
    params = []
    for param in model.params:
        if param.name in mapping and param.symbol is not None and str(param.symbol) == param.name:
            new_symbol = sp.Symbol(mapping[param.name], **param.symbol.assumptions0)
            swap[param.symbol] = new_symbol
            param = replace(param, symbol=new_symbol)
        params.append(replace(param, name=mapping.get(param.name, param.name)))
    inputs = tuple(replace(inp, name=mapping.get(inp.name, inp.name)) for inp in model.inputs)
    layout = model.layout
    if layout is not None and layout.param in mapping:
        layout = replace(layout, param=mapping[layout.param])
    note = "Renamed where the notation uses the name: " + ", ".join(f"{a} is written {b}" for a, b in mapping.items())
    return replace(model, inputs=inputs, params=tuple(params), layout=layout, output=model.output.xreplace(swap),
                   notes=(*model.notes, note + "."),
                   where=tuple((mapping.get(n, n), e.xreplace(swap)) for n, e in model.where),
                   shift_invariant=tuple((mapping.get(n, n), d) for n, d in model.shift_invariant))

