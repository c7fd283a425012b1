"""The shapes the proof calls a kernel with, per layout, and how they map onto the model's axes.

A ``Case`` is one call: the shape of every input as the user passes it (None: an optional input
omitted), the layout keywords (``axis``, ``keepdims``, ``num_groups``), and the maps between the
user's arrays and the model's core axes (leading axes the batch).  These maps are written here
from the layout's definition in ``derive.model.Layout``, not taken from the kernels' runtime, so a
kernel that moves or reshapes an axis wrongly disagrees with the oracle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from ..model import OperatorModel, free_sizes

Sizes = dict
ROWS = 5
"""Rows of the batch in the larger cases: more than the chunks the numba target's proof splits a call
into (3, then 4: ``targets.numba.CHUNKINGS``) and a multiple of neither, so no row is left out or done twice unseen."""


@dataclass
class Case:
    shapes: list[tuple | None]
    keywords: dict = field(default_factory=dict)
    lay: Callable = lambda inp, a: a
    """A user's array of ``inp`` -> the same values on the model's core axes (last), batch leading."""
    unlay: Callable = lambda inp, a, shape: a
    """Values on the core axes (full batch) -> laid out like the user's array (before summing)."""
    lay_out: Callable = lambda a: a
    unlay_out: Callable = lambda a: a

    def to_core(self, inp, array):
        return None if array is None else self.lay(inp, np.asarray(array))

    def from_core(self, inp, value, array):
        return self.unlay(inp, value, np.shape(array))

    def to_core_output(self, value):
        return self.lay_out(np.asarray(value))

    def from_core_output(self, value):
        return self.unlay_out(value)


def fit(value: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``value`` over the axes broadcasting added or stretched, down to ``shape``."""
    value = np.asarray(value)
    extra = value.ndim - len(shape)
    if extra > 0:
        value = value.sum(axis=tuple(range(extra)))
    stretched = tuple(a for a, n in enumerate(shape) if n == 1 and value.shape[a] != 1)
    return value.sum(axis=stretched, keepdims=True) if stretched else value


def cases(model: OperatorModel, size_cases: list[Sizes]) -> list[tuple[Sizes, Case]]:
    """Every (sizes, case) the proof runs for ``model``."""
    kind = model.layout.kind
    if kind == "elementwise":
        return [({d: 1 for d in free_sizes(model.dims())}, case) for case in _elementwise(model)]
    if kind == "flatten":
        return _flatten(model)
    out = []
    for sizes in size_cases:
        out += [(sizes, case) for case in _BUILDERS[kind](model, sizes)]
    return out


def _core(model: OperatorModel, inp, sizes: Sizes) -> tuple:
    return tuple(int(sp.sympify(d).subs(sizes)) for d in inp.dims)


def _batches(count: int) -> list[list[tuple]]:
    """Batch shapes for ``count`` required inputs: none; 5 rows (``ROWS``); a size-1 batch axis beside
    the core (``(1, 2)``, or ``(1,)`` beside 5 rows); and broadcasting ones (6 rows, and 2)."""
    if count <= 1:
        return [[()] * count, [(ROWS,)] * count, [(1, 2)] * count]
    return [[()] * count, [(ROWS,)] * count, [(2, 1) if p % 2 == 0 else (3,) for p in range(count)],
            [()] + [(2,)] * (count - 1), [(1,)] + [(ROWS,)] * (count - 1)]


def _with_optional(model: OperatorModel, required: list[tuple], optional: Callable) -> list[list]:
    """Shapes with every optional input given (core only), and once with them all omitted."""
    given, omitted, it = [], [], iter(required)
    for inp in model.inputs:
        shape = optional(inp) if inp.optional else next(it)
        given.append(shape)
        omitted.append(None if inp.optional else shape)
    return [given, omitted] if any(inp.optional for inp in model.inputs) else [given]


def _last(model: OperatorModel, sizes: Sizes) -> list[Case]:
    required = [inp for inp in model.inputs if not inp.optional]
    out = []
    for position, batches in enumerate(_batches(len(required))):
        shapes = [b + _core(model, inp, sizes) for inp, b in zip(required, batches)]
        choices = _with_optional(model, shapes, lambda inp: _core(model, inp, sizes))
        out += [Case(s) for s in (choices if position == 0 else choices[:1])]
    return out


def _axis(model: OperatorModel, sizes: Sizes) -> list[Case]:
    out = []
    keepdims = [False, True] if model.layout.keepdims else [None]
    for batch in [(), (2, 3), (1, ROWS)]:
        ndim = len(batch) + 1
        for axis in range(-ndim, ndim):
            for keep in keepdims:
                out.append(_axis_case(model, sizes, batch, axis, keep))
    return out


def _axis_case(model: OperatorModel, sizes: Sizes, batch: tuple, axis: int, keep: bool | None) -> Case:
    ndim = len(batch) + 1
    position = axis % ndim

    def shape(inp):
        core = _core(model, inp, sizes)
        return batch[:position] + core + batch[position:] if core else batch

    def lay(inp, a):
        return np.moveaxis(a, axis, -1) if inp.dims else a

    def unlay(inp, a, user_shape):
        return np.moveaxis(a, -1, axis) if inp.dims else a

    has_axis = bool(model.output_indices)
    keywords = {model.layout.param: axis} | ({model.layout.keepdims: keep} if keep is not None else {})
    return Case([shape(inp) for inp in model.inputs], keywords, lay, unlay,
                lambda a: np.moveaxis(a, axis, -1) if has_axis else (np.squeeze(a, axis) if keep else a),
                lambda a: np.moveaxis(a, -1, axis) if has_axis else (np.expand_dims(a, axis) if keep else a))


def _elementwise(model: OperatorModel) -> list[Case]:
    count = len(model.inputs)
    shapes: list[list[tuple | None]] = [[()] * count, [(ROWS, 3)] * count, [(1, 2)] * count]
    if count > 1:
        shapes += [[(2, 3) if p % 2 == 0 else (3,) for p in range(count)],
                   [(ROWS, 1) if p % 2 == 0 else (1, 3) for p in range(count)],
                   [() if p % 2 == 0 else (2, 3) for p in range(count)]]
    return [Case(s, {}, lambda inp, a: a[..., None], lambda inp, a, shape: a[..., 0],
                 lambda a: a[..., None], lambda a: a[..., 0]) for s in shapes]


def _flatten(model: OperatorModel) -> list[tuple[Sizes, Case]]:
    count = len(model.inputs)
    options: list[list[tuple[int, ...]]] = [[(3,)] * count, [(2, 3) if p % 2 == 0 else (3,) for p in range(count)],
                                            [()] * count]
    if count > 1:
        options += [[(2, 1) if p % 2 == 0 else (1, 3) for p in range(count)],
                    [() if p % 2 == 0 else (2,) for p in range(count)]]
    out = []
    for shapes in options:
        common = np.broadcast_shapes(*shapes)
        n = int(np.prod(common))
        out.append(({d: n for d in free_sizes(model.dims())}, Case(
            list(shapes), {}, lambda inp, a, common=common: np.broadcast_to(a, common).reshape(-1),
            lambda inp, a, shape, common=common: a.reshape(common))))
    return out


def _channels(model: OperatorModel, sizes: Sizes, groups: bool = False) -> list[Case]:
    x = model.inputs[0]
    core = _core(model, x, sizes)
    n, spatial = core[0], core[-1]
    channels = int(np.prod(core[1:-1]))
    per_channel = core[1:-1]
    spatials: list[tuple[int, ...]] = [(spatial,), (1, spatial)] + ([()] if spatial == 1 else [])
    keywords = {model.layout.param: core[1]} if groups else {}
    out = []
    for position, rest in enumerate(spatials):
        given: list[tuple | None] = [(n, channels, *rest)]
        given += [(channels,) for _ in model.inputs[1:]]
        shapes: list[list[tuple | None]] = [given]
        if position == 0 and any(i.optional for i in model.inputs):
            shapes.append([given[0]] + [None if i.optional else (channels,) for i in model.inputs[1:]])
        for s in shapes:
            out.append(Case(s, keywords,
                            lambda inp, a: (a.reshape((a.shape[0], *per_channel, -1)) if inp is x
                                            else a.reshape(per_channel)),
                            lambda inp, a, shape: a.reshape(shape),
                            lambda a: a.reshape((a.shape[0], *per_channel, -1)),
                            lambda a, user=(n, channels) + rest: a.reshape(user)))
    return out


_BUILDERS = {"last": _last, "axis": _axis, "channels": _channels,
             "groups": lambda model, sizes: _channels(model, sizes, groups=True)}
