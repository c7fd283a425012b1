"""Concrete expressions (entries as plain symbols) evaluated in double precision, derivatives too.

``evaluate`` walks an expression as the DAG it is (a row's mean shared by every entry of the row)
with Python numbers, each distinct subexpression once; an ``EntryDerivative(f, x_2_0)`` (an open
derivative written out at concrete sizes) is evaluated by forward mode, the rules ``sympy.diff``
applies carried out on numbers, without building the derivative.  Anything it does not know raises
``NotNumeric``: the caller then builds SymPy's exact forms (``concrete``, ``equality``).
"""

from __future__ import annotations

import cmath
import functools
import math
import operator

import sympy as sp

SCREEN = 1e-9
"""Relative agreement in float64 taken as equal; anything further apart is evaluated in 30 digits."""


class NotNumeric(Exception):
    """An expression holding something ``evaluate`` cannot compute in floating point."""


class EntryDerivative(sp.Expr):
    """d f / d x for a concrete ``f`` and an entry symbol ``x``, left to ``evaluate`` (forward mode)."""

    is_commutative = True

    def __new__(cls, expr: sp.Expr, by: sp.Symbol) -> sp.Expr:
        return sp.Expr.__new__(cls, expr, by)


def agree(a: sp.Expr, b: sp.Expr, point: dict, real: bool = False) -> bool:
    """Do ``a`` and ``b`` agree at ``point`` in double precision (False: not computable so; with
    ``real``, also False where either is not a real number)?"""
    try:
        fa, fb = evaluate(a, point), evaluate(b, point)
    except NotNumeric:
        return False
    if real and any(abs(complex(v).imag) > SCREEN * max(1.0, abs(v)) for v in (fa, fb)):
        return False
    return cmath.isfinite(fa) and cmath.isfinite(fb) and abs(fa - fb) <= SCREEN * max(1.0, abs(fa), abs(fb))


def evaluate(expr: sp.Expr, point: dict[sp.Symbol, complex]) -> complex:
    """``expr`` at ``point`` in double precision, each distinct subexpression computed once.

    SymPy's own arithmetic on Floats rebuilds the expression node by node; this walks it with
    Python numbers.  Raises ``NotNumeric`` for what it does not know (an open Derivative, an
    unknown function, a derivative where the function has none).
    """
    try:
        return _Evaluation(point).value(expr)
    except (ZeroDivisionError, OverflowError, ValueError, TypeError) as error:
        raise NotNumeric(str(error)) from None


class _Evaluation:
    """Values (and derivatives by each entry asked for) of the subexpressions met, at one point."""

    def __init__(self, point: dict) -> None:
        self.point = point
        self.values: dict[sp.Basic, complex] = {}
        self.tangents: dict[sp.Symbol, dict[sp.Basic, complex]] = {}

    def value(self, expr: sp.Basic) -> complex:
        if expr in self.values:
            return self.values[expr]
        if expr.is_Number or expr.is_NumberSymbol:
            value = complex(expr)
        elif expr.is_Symbol:
            if expr not in self.point:
                raise NotNumeric(f"no value for {expr}")
            value = complex(self.point[expr])
        elif isinstance(expr, sp.Piecewise):
            value = self.value(self._branch(expr))
        elif isinstance(expr, EntryDerivative):
            value = self.tangent(*expr.args)
        elif (form := _elementary(expr)) is not None:
            value = self.value(form)
        else:
            value = _apply(expr, [self.value(a) for a in expr.args])
        self.values[expr] = value
        return value

    def tangent(self, expr: sp.Basic, by: sp.Symbol) -> complex:
        """d expr / d by at the point: sympy.diff's rules, on the values of the parts."""
        memo = self.tangents.setdefault(by, {})
        if expr in memo:
            return memo[expr]
        if expr.is_Number or expr.is_NumberSymbol:
            tangent = 0j
        elif expr.is_Symbol:
            tangent = 1 + 0j if expr == by else 0j
        elif isinstance(expr, sp.Piecewise):
            tangent = self.tangent(self._branch(expr), by)
        elif isinstance(expr, EntryDerivative):
            raise NotNumeric("a derivative of a derivative")
        elif (form := _elementary(expr)) is not None:
            tangent = self.tangent(form, by)
        else:
            parts = [self.tangent(a, by) for a in expr.args]
            tangent = _chain(expr, [self.value(a) for a in expr.args], parts) if any(parts) else 0j
        memo[expr] = tangent
        return tangent

    def _branch(self, expr: sp.Piecewise) -> sp.Expr:
        branch = next((e for e, c in expr.args if self._truth(c)), None)
        if branch is None:
            raise NotNumeric(f"no branch of {expr} holds")
        return branch

    def _truth(self, condition: sp.Basic) -> bool:
        if condition in (sp.true, True):
            return True
        if condition in (sp.false, False):
            return False
        if isinstance(condition, sp.And):
            return all(self._truth(c) for c in condition.args)
        if isinstance(condition, sp.Or):
            return any(self._truth(c) for c in condition.args)
        if isinstance(condition, sp.Not):
            return not self._truth(condition.args[0])
        if isinstance(condition, sp.core.relational.Relational):
            left, right = (self.value(a) for a in condition.args)
            if left.imag or right.imag:
                raise NotNumeric("a comparison of complex numbers")
            return bool(_COMPARE[condition.rel_op](left.real, right.real))
        raise NotNumeric(f"cannot decide {condition}")


def _elementary(expr: sp.Basic) -> sp.Expr | None:
    """A model's function (sigmoid) as its elementary definition, if it has one."""
    if not isinstance(expr, sp.Function) or type(expr).__name__ in _FUNCTIONS or not hasattr(expr, "as_elementary"):
        return None
    form = expr.as_elementary()
    return None if form is None or form == expr else form


def _apply(expr: sp.Basic, args: list[complex]) -> complex:
    if isinstance(expr, sp.Add):
        return sum(args)
    if isinstance(expr, sp.Mul):
        return functools.reduce(operator.mul, args, 1)
    if isinstance(expr, sp.Pow):
        return _power(*args)
    function = _FUNCTIONS.get(type(expr).__name__)
    if function is None or len(args) != 1 and type(expr).__name__ not in ("Max", "Min", "KroneckerDelta"):
        raise NotNumeric(f"cannot evaluate {type(expr).__name__} in floating point")
    return complex(function(*args))


def _power(base: complex, exponent: complex) -> complex:
    return complex(base.real ** exponent.real) if not base.imag and not exponent.imag and (
        base.real > 0 or exponent.real.is_integer()) else base ** exponent


def _chain(expr: sp.Basic, values: list[complex], tangents: list[complex]) -> complex:
    """The derivative of ``expr`` from its arguments' values and derivatives (``tangents``)."""
    if isinstance(expr, sp.Add):
        return sum(tangents)
    if isinstance(expr, sp.Mul):  # sum_i t_i prod_{j != i} v_j, without dividing by a value
        total, before = 0j, 1 + 0j
        after = [1 + 0j] * (len(values) + 1)
        for position in range(len(values) - 1, -1, -1):
            after[position] = after[position + 1] * values[position]
        for position, (value, tangent) in enumerate(zip(values, tangents)):
            total += tangent * before * after[position + 1]
            before *= value
        return total
    if isinstance(expr, sp.Pow):
        (base, exponent), (d_base, d_exponent) = values, tangents
        if not d_exponent:
            return exponent * _power(base, exponent - 1) * d_base
        return _power(base, exponent) * (d_exponent * cmath.log(base) + exponent * d_base / base)
    name = type(expr).__name__
    if name in ("Max", "Min"):
        return _extremum(name, values, tangents)
    if len(values) != 1 or name not in _DERIVATIVES:
        raise NotNumeric(f"cannot differentiate {name} in floating point")
    return _DERIVATIVES[name](values[0]) * tangents[0]


def _extremum(name: str, values: list[complex], tangents: list[complex]) -> complex:
    """As sympy.diff: each argument's derivative times Heaviside(it - the extremum of the others)."""
    if any(v.imag for v in values):
        raise NotNumeric("a real function at a complex argument")
    pick = max if name == "Max" else min
    total = 0j
    for position, tangent in enumerate(tangents):
        others = pick(v.real for i, v in enumerate(values) if i != position)
        gap = values[position].real - others if name == "Max" else others - values[position].real
        total += _heaviside(gap) * tangent
    return total


def _real(function):
    return lambda *args: function(*(a.real for a in args)) if not any(a.imag for a in args) else _complex_only()


def _complex_only():
    raise NotNumeric("a real function at a complex argument")


def _heaviside(value: float) -> float:
    return float(value > 0) + 0.5 * (value == 0)


def _flat(value: float) -> float:
    """The derivative of a step (sign, Heaviside): 0 away from the step, none at it."""
    if value == 0:
        raise NotNumeric("a step differentiated where it jumps")
    return 0.0


_FUNCTIONS = {
    "exp": cmath.exp, "log": cmath.log, "sin": cmath.sin, "cos": cmath.cos, "tan": cmath.tan,
    "sinh": cmath.sinh, "cosh": cmath.cosh, "tanh": cmath.tanh, "erf": _real(math.erf),
    "Abs": abs, "sign": _real(lambda v: math.copysign(1.0, v) if v else 0.0), "Heaviside": _real(_heaviside),
    "Max": _real(max), "Min": _real(min), "KroneckerDelta": _real(lambda a, b: float(a == b)),
}
_DERIVATIVES = {
    "exp": cmath.exp, "log": lambda v: 1 / v, "sin": cmath.cos, "cos": lambda v: -cmath.sin(v),
    "tan": lambda v: 1 + cmath.tan(v) ** 2, "sinh": cmath.cosh, "cosh": cmath.sinh,
    "tanh": lambda v: 1 - cmath.tanh(v) ** 2, "erf": _real(lambda v: 2 / math.sqrt(math.pi) * math.exp(-v * v)),
    "Abs": _real(lambda v: math.copysign(1.0, v) if v else 0.0), "sign": _real(_flat), "Heaviside": _real(_flat),
}
_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
            "==": operator.eq, "!=": operator.ne}
