"""Models traced from array code: ``trace(fn, {"x": ("n",)})`` runs ``fn`` on symbolic arrays.

The function is written against NumPy or the Array API (``operations.py``, ``namespace.py`` say what traces);
its output entry becomes the model's output, its keyword parameters with number defaults ``Param``s,
and the reductions it named (``rms = ...``) the model's ``where``.  A maximum subtracted for stability
is found to cancel (at random points) and dropped, as the built-in softmax is written.
"""

from __future__ import annotations

import inspect
import linecache
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import sympy as sp

from ...errors import ModelError
from ..functions import max_over
from ..operator import Input, OperatorModel, Param, size
from . import namespace  # noqa: F401  (installs the NumPy and Array API functions on Sym)
from .arrays import Axis, Refused, Sym, Tracer
from .stabilize import renamed, stabilized

AXIS_PARAMETERS = ("axis", "dim", "axes")
"""Keyword parameters taken as they are (Python integers), never as symbols."""
RESERVED = {"y", "e", "E", "I", "pi", "oo", "delta", "sp"}
"""Names the documents and kernels use themselves: never an intermediate's."""
_HERE = {str(path) for path in Path(__file__).parent.glob("*.py")} | {str(Path(__file__).parents[1] / "functions.py")}
_LIBRARIES = ("numpy", "scipy", "array_api_compat", "sympy")


class TraceError(ModelError):
    """A function that cannot be traced; the message names the function, the line and the operation."""


def trace(fn: Callable[..., Any], shapes: Mapping[str, Sequence[str]], *, name: str | None = None,
          origin: str = "") -> OperatorModel:
    """The ``OperatorModel`` of ``fn``: ``shapes`` gives each array argument's core axes by name
    (``("n",)``; ``()`` a scalar); batch dimensions stay implicit, as in every model."""
    if not callable(fn) or not hasattr(fn, "__code__"):
        raise TraceError(f"cannot trace {fn!r}: a Python function is traced")
    run = _Run(fn)
    arguments, inputs, params = run.arguments(shapes)
    positional = [arguments.pop(n) for n, p in inspect.signature(fn).parameters.items() if p.kind == p.POSITIONAL_ONLY]
    try:
        result = fn(*positional, **arguments)
    except Refused as refusal:
        raise TraceError(run.where(refusal, f"cannot trace {refusal}")) from None
    except TraceError:
        raise
    except Exception as error:  # the user's own code, run on symbolic arrays
        raise TraceError(run.where(error, f"{type(error).__name__}: {error}")) from None
    if not isinstance(result, Sym):
        raise TraceError(f"{fn.__name__} returns {type(result).__name__}, not an array computed from its inputs")
    if any(axis.index is None for axis in result.axes):
        raise TraceError(f"{fn.__name__} returns an array of shape {result.shape_text} with an axis of length "
                         "one (keepdims=True or None); return it without that axis")
    output, where, shifts = stabilized(result.expr, run.named(result), inputs, params)
    model = OperatorModel(
        name=name or fn.__name__, summary=_summary(fn), category="traced", inputs=tuple(inputs),
        output_indices=tuple(axis.index for axis in result.axes), output=output, params=tuple(params),
        where=where, shift_invariant=shifts, source=_source(fn),
        notes=(f"Traced from the array code of {fn.__name__}.",), origin=origin)
    taken = {*(i.name for i in inputs), *(p.name for p in params), *(str(d) for d in model.dims()),
             *(n for n, _ in where)}
    return renamed(model, taken)


class _Run(Tracer):
    """One trace: the symbolic arguments, and the names the user's code gives its arrays."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__(self._look)
        self.fn = fn
        self.names: dict[int, tuple[str, Sym]] = {}
        self.inputs: set[str] = set()
        self.taken: set[str] = set()

    def arguments(self, shapes: Mapping[str, Sequence[str]]) -> tuple[dict[str, Any], list[Input], list[Param]]:
        fn, signature = self.fn, inspect.signature(self.fn)
        unknown = [n for n in shapes if n not in signature.parameters]
        if unknown:
            raise TraceError(f"{fn.__name__} has no argument {', '.join(map(repr, unknown))} "
                             f"(its arguments: {', '.join(signature.parameters)})")
        sizes: dict[str, sp.Symbol] = {}
        arguments: dict[str, Any] = {}
        inputs, params = [], []
        for name, parameter in signature.parameters.items():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise TraceError(f"{fn.__name__}: *{name} cannot be traced; name each array argument")
            if name in shapes:
                inp = Input(name, tuple(_size(sizes, axis, name, fn) for axis in _axes(shapes[name], name)))
                inputs.append(inp)
                arguments[name] = self._input(inp)
            elif parameter.default is parameter.empty:
                raise TraceError(f"{fn.__name__}: the argument {name!r} has no shape and no default; give its "
                                 f"axes (--shape {name}=n, or {{{name!r}: ('n',)}})")
            elif _is_number(parameter.default) and name not in AXIS_PARAMETERS:
                default = parameter.default.item() if isinstance(parameter.default, np.generic) else parameter.default
                symbol = sp.Symbol(name, positive=True) if default > 0 else sp.Symbol(name, real=True)
                params.append(Param(name, default, symbol))
                arguments[name] = Sym(self, symbol, ())
            else:
                arguments[name] = parameter.default
        clash = set(sizes) & set(signature.parameters)
        if clash:
            raise TraceError(f"{fn.__name__}: {', '.join(sorted(clash))} names both an argument and an axis")
        self.inputs = {inp.name for inp in inputs}
        self.taken = RESERVED | set(signature.parameters) | set(sizes)
        return arguments, inputs, params

    def _input(self, inp: Input) -> Sym:
        indices = tuple(self.fresh(d) for d in inp.dims)
        return Sym(self, inp[indices] if indices else inp[()],
                   tuple(Axis(d, i) for d, i in zip(inp.dims, indices)))

    def _look(self) -> None:
        """Record the names the user's frame gives its arrays so far (before each operation)."""
        frame: FrameType | None = sys._getframe(1)
        while frame is not None and (frame.f_code.co_filename in _HERE
                                     or _library_module(str(frame.f_globals.get("__name__", "")))):
            frame = frame.f_back
        if frame is None:
            return
        for name, value in frame.f_locals.items():
            if isinstance(value, Sym) and id(value) not in self.names:
                self.names[id(value)] = (name, value)

    def named(self, result: Sym) -> list[tuple[str, sp.Expr]]:
        """The reductions the code named (``rms``), as candidates for the model's ``where``."""
        rank = len(result.axes)
        found: dict[str, sp.Expr] = {}
        for name, value in self.names.values():
            if name in found or name in self.taken or name.startswith(("_", "dot_")) or value is result \
                    or any(name == f"d{i}" for i in self.inputs) or not value.expr.has(sp.Sum, max_over):
                continue
            if sum(1 for a in value.axes if a.index is not None) < rank:
                found[name] = value.expr
        return list(found.items())

    def where(self, error: BaseException, what: str) -> str:
        """``what`` prefixed by the function and the line of the user's code that raised."""
        frames = [f for f in traceback.extract_tb(error.__traceback__)
                  if f.filename not in _HERE and not _in_library(f.filename)]
        line = ""
        if frames:
            last = frames[-1]
            text = linecache.getline(last.filename, last.lineno or 0).strip()
            line = f" at line {last.lineno} of {Path(last.filename).name}" + (f" ({text})" if text else "")
        return f"{self.fn.__name__}{line}: {what}"


def _library_module(name: str) -> bool:
    return any(name == library or name.startswith(f"{library}.") for library in _LIBRARIES)


def _in_library(filename: str) -> bool:
    parts = Path(filename).parts
    return any(p in parts for p in _LIBRARIES) or "site-packages" in parts and "derive" not in parts


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _axes(shape: Any, name: str) -> tuple[str, ...]:
    if isinstance(shape, str):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not all(isinstance(a, str) for a in shape):
        raise TraceError(f"the shape of {name!r} is {shape!r}: give its axes by name, e.g. ('n',) or () for a scalar")
    return tuple(shape)


def _size(sizes: dict[str, sp.Symbol], axis: str, name: str, fn: Callable[..., Any]) -> sp.Symbol:
    if not axis.isidentifier() or axis.startswith("_"):
        raise TraceError(f"{fn.__name__}: the axis {axis!r} of {name!r} is not a name (letters, digits and _)")
    return sizes.setdefault(axis, size(axis))


def _summary(fn: Callable[..., Any]) -> str:
    doc = inspect.getdoc(fn)
    return doc.strip().splitlines()[0].rstrip(".") if doc else f"{fn.__name__}, traced from its array code"


def _source(fn: Callable[..., Any]) -> str:
    try:
        file = inspect.getsourcefile(fn)
    except TypeError:
        file = None
    return f"{Path(file).name}:{fn.__name__}" if file else fn.__name__
