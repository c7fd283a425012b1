"""NumPy's and the Array API's functions on symbolic arrays, by name: ``UFUNCS`` (what
``__array_ufunc__`` dispatches: exp, maximum, erf ...) and ``FUNCTIONS`` (``__array_function__``:
sum, mean, var, where, einsum ...).  A name in neither is refused with its name.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import sympy as sp

from ..functions import sigmoid, softplus
from .arrays import (
    UNIT,
    Refused,
    Sym,
    _tracer,
    as_sym,
    constant,
    elementwise,
    expand_dims,
    matmul,
    reduce,
    reshape,
    squeeze,
    swapaxes,
)


def larger(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    """max(a, b): against a constant, the branch form relu is written in (x where x > c, else c: the
    derivative at the kink from the constant side, as PyTorch takes relu's and clamp's); else Max."""
    if b.is_number and not a.is_number:
        return sp.Piecewise((a, a > b), (b, True))
    if a.is_number and not b.is_number:
        return sp.Piecewise((b, b > a), (a, True))
    return sp.Max(a, b)


def smaller(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    """min(a, b), as ``larger``."""
    if b.is_number and not a.is_number:
        return sp.Piecewise((a, a < b), (b, True))
    if a.is_number and not b.is_number:
        return sp.Piecewise((b, b < a), (a, True))
    return sp.Min(a, b)


def clip(array: Any, low: Any = None, high: Any = None, **rest: Any) -> Sym:
    """Bounded below, then above; with constant bounds one Piecewise, the kinks from inside as clamp's."""
    low, high = rest.pop("min", low), rest.pop("max", high)
    if rest:
        raise Refused(f"clip with {', '.join(rest)}=")
    if _number(low) and _number(high):
        def clamped(x: sp.Expr) -> sp.Expr:
            return sp.Piecewise((constant(low), x < constant(low)), (constant(high), x > constant(high)), (x, True))
        return elementwise(clamped, array)
    result = array if low is None else elementwise(larger, array, low)
    return result if high is None else elementwise(smaller, result, high)


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def where(condition: Any, chosen: Any, other: Any) -> Sym:
    return elementwise(lambda c, a, b: sp.Piecewise((a, c), (b, True)), condition, chosen, other)


def vecdot(a: Any, b: Any, axis: int = -1) -> Sym:
    return reduce(elementwise(lambda u, v: u * v, a, b), "sum", axis)


def einsum(subscripts: str, *operands: Any) -> Sym:
    """Explicit or implicit einsum over distinct letters per operand (no ellipsis, no diagonals)."""
    if not isinstance(subscripts, str) or "." in subscripts:
        raise Refused("einsum with an ellipsis or without a subscripts string")
    given, arrow, wanted = subscripts.replace(" ", "").partition("->")
    terms = given.split(",")
    letters = "".join(terms)
    if len(terms) != len(operands) or any(len(set(t)) != len(t) for t in terms):
        raise Refused(f"einsum {subscripts!r} (one letter per axis, none repeated within an operand)")
    output = wanted if arrow else "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    order = output + "".join(dict.fromkeys(c for c in letters if c not in output))
    tracer = _tracer(operands)
    arranged = []
    for term, operand in zip(terms, operands):
        array = as_sym(operand, tracer)
        if array.ndim != len(term):
            raise Refused(f"einsum {subscripts!r}: {term} names {len(term)} axes of an array with {array.ndim}")
        arranged.append(Sym(tracer, array.expr, tuple(array.axes[term.index(c)] if c in term else UNIT for c in order)))
    product = arranged[0]
    for array in arranged[1:]:
        product = product * array
    contracted = tuple(range(len(output), len(order)))
    return reduce(product, "sum", contracted) if contracted else product


def logaddexp(a: Any, b: Any) -> Sym:
    if isinstance(a, numbers.Real) and a == 0:
        return elementwise(softplus, b)
    if isinstance(b, numbers.Real) and b == 0:
        return elementwise(softplus, a)
    return elementwise(lambda u, v: sp.log(sp.exp(u) + sp.exp(v)), a, b)


def norm(array: Sym, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Sym:
    if ord not in (None, 2) or (axis is None and array.ndim > 1):
        raise Refused("a norm other than the 2-norm of vectors (give axis=)")
    return elementwise(sp.sqrt, reduce(array * array, "sum", axis, keepdims))


def _unary(function: Callable[[sp.Expr], sp.Expr]) -> Callable[[Any], Sym]:
    return lambda x: elementwise(function, x)


def _binary(function: Callable[[sp.Expr, sp.Expr], sp.Expr]) -> Callable[[Any, Any], Sym]:
    return lambda a, b: elementwise(function, a, b)


UNARY: dict[str, Callable[[sp.Expr], sp.Expr]] = {
    "exp": sp.exp, "log": sp.log, "log1p": lambda x: sp.log(1 + x), "expm1": lambda x: sp.exp(x) - 1,
    "sqrt": sp.sqrt, "square": lambda x: x**2, "reciprocal": lambda x: 1 / x, "negative": lambda x: -x,
    "positive": lambda x: x, "tanh": sp.tanh, "sinh": sp.sinh, "cosh": sp.cosh, "sin": sp.sin, "cos": sp.cos,
    "tan": sp.tan, "arctan": sp.atan, "erf": sp.erf, "abs": sp.Abs, "absolute": sp.Abs, "fabs": sp.Abs,
    "sign": sp.sign, "expit": sigmoid, "logical_not": sp.Not,
}
BINARY: dict[str, Callable[[sp.Expr, sp.Expr], sp.Expr]] = {
    "add": lambda a, b: a + b, "subtract": lambda a, b: a - b, "multiply": lambda a, b: a * b,
    "divide": lambda a, b: a / b, "true_divide": lambda a, b: a / b, "power": lambda a, b: a**b,
    "pow": lambda a, b: a**b, "float_power": lambda a, b: a**b, "maximum": larger, "minimum": smaller,
    "fmax": larger, "fmin": smaller, "greater": sp.Gt, "greater_equal": sp.Ge, "less": sp.Lt, "less_equal": sp.Le,
    "logical_and": sp.And, "logical_or": sp.Or,
}
UFUNCS: dict[str, Callable[..., Sym]] = {
    **{name: _unary(f) for name, f in UNARY.items()}, **{name: _binary(f) for name, f in BINARY.items()},
    "logaddexp": logaddexp, "matmul": matmul, "vecdot": vecdot,
}
FUNCTIONS: dict[str, Callable[..., Sym]] = {
    "sum": lambda x, axis=None, keepdims=False, **r: reduce(x, "sum", axis, keepdims, r),
    "mean": lambda x, axis=None, keepdims=False, **r: reduce(x, "mean", axis, keepdims, r),
    "max": lambda x, axis=None, keepdims=False, **r: reduce(x, "max", axis, keepdims, r),
    "min": lambda x, axis=None, keepdims=False, **r: reduce(x, "min", axis, keepdims, r),
    "var": lambda x, axis=None, keepdims=False, ddof=0, correction=None: x.var(axis, keepdims, ddof, correction),
    "std": lambda x, axis=None, keepdims=False, ddof=0, correction=None: x.std(axis, keepdims, ddof, correction),
    "where": where, "clip": clip, "matmul": matmul, "vecdot": vecdot, "einsum": einsum, "norm": norm,
    "transpose": lambda x, axes=None: x.transpose(axes or ()), "swapaxes": swapaxes, "expand_dims": expand_dims,
    "squeeze": squeeze, "reshape": lambda x, shape, **r: reshape(x, _sequence(shape), **r),
    "permute_dims": lambda x, axes: x.transpose(axes), "matrix_transpose": lambda x: swapaxes(x, -1, -2),
}
FUNCTIONS["amax"], FUNCTIONS["amin"] = FUNCTIONS["max"], FUNCTIONS["min"]
Sym.ufuncs, Sym.functions = UFUNCS, FUNCTIONS


def _sequence(shape: Any) -> tuple:
    return tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
