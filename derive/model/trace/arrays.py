"""Symbolic arrays: what a traced function computes with instead of numbers.

A ``Sym`` is one entry of an array, a SymPy expression whose free ``Idx`` indices stand for its axes
(a length-one axis has none), so NumPy's broadcasting, reductions and products become index algebra:
``x - x.mean(-1, keepdims=True)`` is ``x[i] - Sum(x[j], (j, 0, n - 1))/n``.  NumPy reaches it through
``__array_ufunc__``/``__array_function__`` (the tables of ``operations.py``), the Array API through
``__array_namespace__`` (``namespace.py``); both install themselves on ``Sym`` when imported.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sympy as sp

from ..functions import max_over


class Refused(Exception):
    """An operation the tracer cannot turn into a formula; the message names it."""


@dataclass(frozen=True)
class Axis:
    size: sp.Expr
    index: sp.Idx | None
    """None for an axis of length one (kept by keepdims or added by ``None``)."""


UNIT = Axis(sp.Integer(1), None)


class Tracer:
    """What one trace shares: fresh indices and a hook called before every operation (names)."""

    def __init__(self, before: Callable[[], None] = lambda: None) -> None:
        self.count = 0
        self.before = before

    def fresh(self, size: sp.Expr) -> sp.Idx:
        self.count += 1
        return sp.Idx(f"_t{self.count}", size)

    def scalar(self, value: Any) -> Sym:
        if isinstance(value, Sym):
            return value
        return Sym(self, constant(value), ())


def constant(value: Any) -> sp.Expr:
    """A Python or NumPy number (or a size) as SymPy: 0.5 -> 1/2, sqrt(2/pi) as written; refused otherwise."""
    if isinstance(value, sp.Expr):
        return value
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return sp.Integer(int(value))
    if isinstance(value, numbers.Integral):
        return sp.Integer(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isinf(number):
            return sp.oo if number > 0 else -sp.oo
        if math.isnan(number):
            raise Refused("a NaN constant")
        return _simple(number)
    if type(value).__name__ == "ndarray":
        raise Refused("a NumPy array of numbers (a constant array has no symbolic axes: make it an input)")
    raise Refused(f"a {type(value).__name__} value where a number or an array is expected")


def _simple(number: float) -> sp.Expr:
    """The exact number a float literal means when it is a short rational or a simple surd of pi."""
    if number == 0:
        return sp.Integer(0)
    guess = sp.nsimplify(number, [sp.pi], tolerance=1e-15 * abs(number))
    small = all(abs(r.q) <= 10**6 and abs(r.p) <= 10**9 for r in guess.atoms(sp.Rational))
    if small and sp.count_ops(guess) <= 6 and abs(float(guess) - number) <= 1e-15 * abs(number):
        return guess
    return sp.Float(number)


class Sym:
    """A symbolic array: ``expr`` is its entry, ``axes`` its shape (batch dimensions are implicit)."""

    __array_priority__ = 1000
    ufuncs: dict[str, Callable[..., Sym]] = {}
    functions: dict[str, Callable[..., Sym]] = {}
    namespace: Any = None

    def __init__(self, tracer: Tracer, expr: sp.Expr, axes: tuple[Axis, ...]) -> None:
        self.tracer, self.expr, self.axes = tracer, expr, axes

    def __repr__(self) -> str:
        return f"Sym({self.expr}, shape={self.shape_text})"

    @property
    def shape_text(self) -> str:
        return "(" + ", ".join(str(a.size) for a in self.axes) + ("," if len(self.axes) == 1 else "") + ")"

    # --- what NumPy and Python ask of an array ---
    @property
    def shape(self) -> tuple[Any, ...]:
        return tuple(1 if a.index is None else Sym(self.tracer, a.size, ()) for a in self.axes)

    @property
    def ndim(self) -> int:
        return len(self.axes)

    @property
    def T(self) -> Sym:
        return self.transpose()

    @property
    def mT(self) -> Sym:
        return swapaxes(self, -1, -2)

    def __array_namespace__(self, api_version: str | None = None) -> Any:
        return self.namespace

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        name = getattr(ufunc, "__name__", str(ufunc))
        if method != "__call__":
            raise Refused(f"np.{name}.{method}")
        if kwargs:
            raise Refused(f"np.{name} with {', '.join(kwargs)}=")
        if name not in self.ufuncs:
            raise Refused(f"np.{name}")
        return self.ufuncs[name](*inputs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        name = func.__name__
        if name not in self.functions:
            raise Refused(f"np.{name}")
        return self.functions[name](*args, **kwargs)

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise Refused("converting to a NumPy array (np.asarray, or a function NumPy runs on numbers)")

    def __bool__(self) -> bool:
        raise Refused("a Python if, and, or, not, max() or bool() on an array (a branch on values); use np.where")

    def __float__(self) -> float:
        raise Refused("float() or math.* of an array or size (use np.sqrt, np.exp ... instead)")

    __complex__ = __float__

    def __index__(self) -> int:
        raise Refused("an array or a size used as a Python integer (int(), range(), a reshape to sizes)")

    __int__ = __index__

    def __iter__(self) -> Any:
        raise Refused("iterating over an array")

    def __len__(self) -> int:
        raise Refused("len() of an array (use x.shape[-1])")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # a library probing for its own arrays (hasattr) is answered as usual
            raise AttributeError(name)
        raise Refused(f"the array method or attribute .{name}")

    def __getitem__(self, key: Any) -> Sym:
        return subscript(self, key)

    # --- arithmetic ---
    def __add__(self, other: Any) -> Sym: return elementwise(lambda a, b: a + b, self, other)
    def __radd__(self, other: Any) -> Sym: return elementwise(lambda a, b: a + b, other, self)
    def __sub__(self, other: Any) -> Sym: return elementwise(lambda a, b: a - b, self, other)
    def __rsub__(self, other: Any) -> Sym: return elementwise(lambda a, b: a - b, other, self)
    def __mul__(self, other: Any) -> Sym: return elementwise(lambda a, b: a * b, self, other)
    def __rmul__(self, other: Any) -> Sym: return elementwise(lambda a, b: a * b, other, self)
    def __truediv__(self, other: Any) -> Sym: return elementwise(lambda a, b: a / b, self, other)
    def __rtruediv__(self, other: Any) -> Sym: return elementwise(lambda a, b: a / b, other, self)
    def __pow__(self, other: Any) -> Sym: return elementwise(lambda a, b: a ** b, self, other)
    def __rpow__(self, other: Any) -> Sym: return elementwise(lambda a, b: a ** b, other, self)
    def __neg__(self) -> Sym: return elementwise(lambda a: -a, self)
    def __pos__(self) -> Sym: return self
    def __abs__(self) -> Sym: return elementwise(sp.Abs, self)
    def __matmul__(self, other: Any) -> Sym: return matmul(self, other)
    def __rmatmul__(self, other: Any) -> Sym: return matmul(other, self)
    def __gt__(self, other: Any) -> Sym: return elementwise(sp.Gt, self, other)
    def __ge__(self, other: Any) -> Sym: return elementwise(sp.Ge, self, other)
    def __lt__(self, other: Any) -> Sym: return elementwise(sp.Lt, self, other)
    def __le__(self, other: Any) -> Sym: return elementwise(sp.Le, self, other)
    def __and__(self, other: Any) -> Sym: return elementwise(sp.And, self, other)
    def __or__(self, other: Any) -> Sym: return elementwise(sp.Or, self, other)
    def __invert__(self) -> Sym: return elementwise(sp.Not, self)
    def __eq__(self, other: Any) -> Any:
        raise Refused("== on an array (compare with <, <=, > or >=)")
    __ne__ = __eq__
    __hash__ = object.__hash__

    # --- methods of NumPy arrays ---
    def sum(self, axis: Any = None, keepdims: bool = False, **rest: Any) -> Sym:
        return reduce(self, "sum", axis, keepdims, rest)

    def mean(self, axis: Any = None, keepdims: bool = False, **rest: Any) -> Sym:
        return reduce(self, "mean", axis, keepdims, rest)

    def max(self, axis: Any = None, keepdims: bool = False, **rest: Any) -> Sym:
        return reduce(self, "max", axis, keepdims, rest)

    def min(self, axis: Any = None, keepdims: bool = False, **rest: Any) -> Sym:
        return reduce(self, "min", axis, keepdims, rest)

    def var(self, axis: Any = None, keepdims: bool = False, ddof: Any = 0, correction: Any = None) -> Sym:
        return variance(self, axis, keepdims, correction if correction is not None else ddof)

    def std(self, axis: Any = None, keepdims: bool = False, ddof: Any = 0, correction: Any = None) -> Sym:
        return elementwise(sp.sqrt, self.var(axis, keepdims, ddof, correction))

    def clip(self, min: Any = None, max: Any = None) -> Sym:
        return self.functions["clip"](self, min, max)

    def transpose(self, *axes: Any) -> Sym:
        order = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        order = tuple(order) or tuple(reversed(range(self.ndim)))
        return Sym(self.tracer, self.expr, tuple(self.axes[_axis(self, a)] for a in order))

    def swapaxes(self, a: int, b: int) -> Sym:
        return swapaxes(self, a, b)

    def reshape(self, *shape: Any, **rest: Any) -> Sym:
        return reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape, **rest)

    def squeeze(self, axis: Any = None) -> Sym:
        return squeeze(self, axis)


def _tracer(values: Sequence[Any]) -> Tracer:
    for value in values:
        if isinstance(value, Sym):
            return value.tracer
    raise Refused("an operation on numbers alone reached the tracer")


def as_sym(value: Any, tracer: Tracer) -> Sym:
    if isinstance(value, (list, tuple)):
        raise Refused("a Python list or tuple used as an array")
    return tracer.scalar(value)


def broadcast(arrays: Sequence[Sym]) -> tuple[tuple[Axis, ...], list[sp.Expr]]:
    """NumPy's broadcast of the arrays' axes (from the right); each array's expression with its
    indices renamed to the result's, every axis of the result with an index of its own."""
    rank = max(len(a.axes) for a in arrays)
    renames: list[dict[sp.Idx, sp.Idx]] = [{} for _ in arrays]
    axes: list[Axis] = []
    used: set[sp.Idx] = set()
    for position in range(rank):
        here = [(k, a.axes[position - rank + len(a.axes)]) for k, a in enumerate(arrays)
                if position - rank + len(a.axes) >= 0]
        sized = [(k, axis) for k, axis in here if axis.index is not None]
        if not sized:
            axes.append(UNIT)
            continue
        size = sized[0][1].size
        if any(axis.size != size for _, axis in sized):
            shapes = " and ".join(a.shape_text for a in arrays)
            raise Refused(f"arrays of shapes {shapes} do not broadcast (axis lengths "
                          f"{', '.join(str(axis.size) for _, axis in sized)})")
        target = sized[0][1].index
        if target in used:
            target = arrays[0].tracer.fresh(size)
        used.add(target)
        for k, axis in sized:
            renames[k][axis.index] = target
        axes.append(Axis(size, target))
    return tuple(axes), [a.expr.xreplace(r) if r else a.expr for a, r in zip(arrays, renames)]


def elementwise(function: Callable[..., sp.Expr], *operands: Any) -> Sym:
    tracer = _tracer(operands)
    tracer.before()
    arrays = [as_sym(o, tracer) for o in operands]
    axes, exprs = broadcast(arrays)
    return Sym(tracer, function(*exprs), axes)


def _axis(array: Sym, axis: Any) -> int:
    if isinstance(axis, Sym) or not isinstance(axis, numbers.Integral) or isinstance(axis, bool):
        raise Refused(f"axis={axis!r}: an axis is a Python integer")
    position = int(axis)
    if not -array.ndim <= position < array.ndim:
        raise Refused(f"axis {axis} of an array with {array.ndim} axes")
    return position % array.ndim


def axes_of(array: Sym, axis: Any) -> list[int]:
    if axis is None:
        return list(range(array.ndim))
    positions = [_axis(array, a) for a in (axis if isinstance(axis, (tuple, list)) else (axis,))]
    return sorted(set(positions))


def reduce(array: Any, kind: str, axis: Any = None, keepdims: bool = False, rest: dict | None = None) -> Sym:
    """sum, mean, max or min over ``axis`` (None: every axis)."""
    if not isinstance(array, Sym):
        raise Refused(f"{kind} of a number")
    if rest:
        raise Refused(f"{kind} with {', '.join(rest)}=")
    array.tracer.before()
    positions = axes_of(array, axis)
    reduced = [array.axes[p] for p in positions if array.axes[p].index is not None]
    fresh = {axis.index: array.tracer.fresh(axis.size) for axis in reduced}
    body = array.expr.xreplace(fresh)
    count = sp.Mul(*(axis.size for axis in reduced))
    if kind in ("sum", "mean"):
        bound = [(j, 0, j.upper) for i, j in fresh.items() if body.has(j)]
        idle = sp.Mul(*(a.size for a in reduced if not body.has(fresh[a.index])))  # summed constants
        total = (sp.Sum(body, *bound) if bound else body) * idle
        expr = total / count if kind == "mean" else total
    else:
        sign = 1 if kind == "max" else -1
        expr = sign * body
        for j in fresh.values():
            expr = max_over(expr, j) if expr.has(j) else expr
        expr = sign * expr
    kept = tuple(UNIT if p in positions else a for p, a in enumerate(array.axes) if keepdims or p not in positions)
    return Sym(array.tracer, expr, kept)


def variance(array: Sym, axis: Any, keepdims: bool, correction: Any) -> Sym:
    positions = axes_of(array, axis)
    count = sp.Mul(*(array.axes[p].size for p in positions))
    centred = array - reduce(array, "mean", axis, True)
    squares = reduce(centred * centred, "sum", axis, keepdims)
    return Sym(array.tracer, squares.expr / (count - constant(correction)), squares.axes)


def swapaxes(array: Sym, a: int, b: int) -> Sym:
    order = list(range(array.ndim))
    first, second = _axis(array, a), _axis(array, b)
    order[first], order[second] = second, first
    return array.transpose(order)


def expand_dims(array: Sym, axis: int) -> Sym:
    position = axis if axis >= 0 else array.ndim + 1 + axis
    return Sym(array.tracer, array.expr, array.axes[:position] + (UNIT,) + array.axes[position:])


def squeeze(array: Sym, axis: Any = None) -> Sym:
    positions = [p for p, a in enumerate(array.axes) if a.index is None] if axis is None else axes_of(array, axis)
    if any(array.axes[p].index is not None for p in positions):
        raise Refused("squeeze of an axis whose length is not one")
    return Sym(array.tracer, array.expr, tuple(a for p, a in enumerate(array.axes) if p not in positions))


def reshape(array: Sym, shape: Sequence[Any], **rest: Any) -> Sym:
    """Only a reshape that adds or drops axes of length one (``gamma.reshape(1, -1, 1)``)."""
    sized = [a for a in array.axes if a.index is not None]
    wanted = [s for s in shape if not (isinstance(s, numbers.Integral) and s == 1)]
    if rest or len(wanted) != len(sized) or any(
            not (isinstance(s, numbers.Integral) and s == -1 and len(sized) == 1)
            and not (isinstance(s, Sym) and s.expr == a.size) for s, a in zip(wanted, sized)):
        raise Refused(f"reshape of an array of shape {array.shape_text} (only axes of length one may be added "
                      "or removed)")
    found = iter(sized)
    axes = tuple(UNIT if isinstance(s, numbers.Integral) and s == 1 else next(found) for s in shape)
    return Sym(array.tracer, array.expr, axes)


def subscript(array: Sym, key: Any) -> Sym:
    """``x[..., None]``, ``x[:, None]``, ``x[None]``: full slices, new axes and one ellipsis only."""
    entries = list(key) if isinstance(key, tuple) else [key]
    if sum(e is Ellipsis for e in entries) > 1:
        raise Refused("an index with two ellipses")
    taking = sum(1 for e in entries if e is not None and e is not Ellipsis)
    if Ellipsis in entries:
        at = entries.index(Ellipsis)
        entries[at:at + 1] = [slice(None)] * (array.ndim - taking)
    else:
        entries += [slice(None)] * (array.ndim - taking)
    axes, source = [], iter(array.axes)
    for entry in entries:
        if entry is None:
            axes.append(UNIT)
        elif isinstance(entry, slice) and entry == slice(None):
            axes.append(next(source, None) or _too_many(array, key))
        else:
            raise Refused(f"indexing with {entry!r} (only :, ... and None trace: a formula has no entry positions)")
    return Sym(array.tracer, array.expr, tuple(axes))


def _too_many(array: Sym, key: Any) -> Axis:
    raise Refused(f"the index {key!r} has more entries than the array has axes ({array.ndim})")


def matmul(a: Any, b: Any) -> Sym:
    tracer = _tracer((a, b))
    a, b = as_sym(a, tracer), as_sym(b, tracer)
    if a.ndim == 0 or b.ndim == 0:
        raise Refused("matmul of a scalar")
    left = a[None, :] if a.ndim == 1 else a
    right = b[:, None] if b.ndim == 1 else b
    product = reduce(left[..., None] * right[..., None, :, :], "sum", -2)
    if b.ndim == 1:
        product = squeeze(product, -1)
    return squeeze(product, -2 if b.ndim > 1 else -1) if a.ndim == 1 else product
