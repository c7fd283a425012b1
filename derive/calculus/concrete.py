"""Index expressions at concrete sizes: expanded into scalar symbols, and compared at random points.

``expand`` fixes every axis size and every free index, expands the finite sums, and names each
entry ``x[2, 0]`` as the symbol ``x_2_0``; an open derivative ``Partial(f, x[k])`` becomes plain
``sympy.diff`` of the expanded ``f`` by the entry symbol, so unfinished derivation steps can be
evaluated too; ``compare`` evaluates two index expressions at random
points for several sizes and returns the first disagreement.  Used to check derivation steps and
hand-written claims where SymPy cannot decide an identity symbolically.
"""

from __future__ import annotations

import functools
import itertools
import random
from dataclasses import dataclass
from typing import Iterable

import sympy as sp

from .differentiate import Partial
from .indices import free_indices


def entry_symbol(base: str, at: Iterable[int]) -> sp.Symbol:
    return sp.Symbol("_".join([base, *(str(v) for v in at)]))


def expand(expr: sp.Expr, sizes: dict[sp.Symbol, int], values: dict[sp.Idx, int]) -> sp.Expr:
    """``expr`` with the sizes and free indices fixed, sums expanded, entries as plain symbols."""
    return _expand(expr, tuple(sizes.items()), tuple(values.items()))


@functools.lru_cache(maxsize=4096)
def _expand(expr: sp.Expr, sizes: tuple, values: tuple) -> sp.Expr:
    sizes, values = dict(sizes), dict(values)
    plain = {i: sp.Symbol(str(i.label), integer=True) for i in expr.atoms(sp.Idx)}
    expr = expr.xreplace(plain).xreplace({d: sp.Integer(v) for d, v in sizes.items()})
    expr = _unroll(expr.xreplace({plain.get(i, i): sp.Integer(v) for i, v in values.items()}))
    expr = expr.replace(lambda e: isinstance(e, Partial),
                        lambda e: sp.diff(_entries(e.args[0]), _entries(e.args[1])))
    return _entries(expr)


def _unroll(expr: sp.Expr) -> sp.Expr:
    """Write out every sum whose limits are integers (inner sums first); others go to ``doit``."""
    if not expr.has(sp.Sum):
        return expr
    if not isinstance(expr, sp.Sum):
        return expr.func(*[_unroll(arg) for arg in expr.args])
    body = _unroll(expr.function)
    for position, (var, lower, upper) in enumerate(expr.limits):
        if not (lower.is_Integer and upper.is_Integer):
            return sp.Sum(body, *expr.limits[position:]).doit()
        body = sp.Add(*[body.xreplace({var: sp.Integer(v)}) for v in range(int(lower), int(upper) + 1)])
    return body


def _entries(expr: sp.Expr) -> sp.Expr:
    """Every concrete entry ``x[2, 0]`` as the symbol ``x_2_0``."""
    if isinstance(expr, sp.Indexed):
        return entry_symbol(str(expr.base), (int(v) for v in expr.indices))
    return expr.replace(lambda e: isinstance(e, sp.Indexed),
                        lambda e: entry_symbol(str(e.base), (int(v) for v in e.indices)))


@dataclass(frozen=True)
class Disagreement:
    """Where two expressions differ: the sizes, the free indices, the point, and both values."""

    sizes: dict
    indices: dict
    point: dict
    left: float
    right: float

    def __str__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        indices = ", ".join(f"{k}={v}" for k, v in self.indices.items())
        point = ", ".join(f"{k}={float(v):.6g}" for k, v in sorted(self.point.items(), key=lambda kv: str(kv[0])))
        return (f"at {sizes}; {indices or 'no free index'}; {point}: "
                f"left = {self.left:.12g}, right = {self.right:.12g}")


def random_point(symbols: Iterable[sp.Symbol], rng: random.Random) -> dict[sp.Symbol, sp.Float]:
    """Random values in [-2, 2] (positive symbols in (0.05, 1]) at 30 significant digits."""
    point = {}
    for symbol in sorted(symbols, key=str):
        low, high = (0.05, 1.0) if symbol.is_positive else (-2.0, 2.0)
        point[symbol] = sp.Float(rng.uniform(low, high), 30)
    return point


def compare(left: sp.Expr, right: sp.Expr, dims: tuple[sp.Symbol, ...], *, sizes: Iterable[int] = (1, 2, 3, 4),
            trials: int = 3, seed: int = 0, tolerance: float = 1e-12) -> Disagreement | None:
    """The first point where ``left`` and ``right`` differ, over several sizes, or None."""
    rng = random.Random(seed)
    indices = sorted(free_indices(left) | free_indices(right), key=lambda i: str(i.label))
    for size in sizes:
        fixed = {d: size for d in dims}
        ranges = [range(int((i.upper - i.lower + 1).subs(fixed))) for i in indices]
        for at in itertools.product(*ranges):
            values = dict(zip(indices, at))
            a, b = expand(left, fixed, values), expand(right, fixed, values)
            for _ in range(trials):
                point = random_point(a.free_symbols | b.free_symbols, rng)
                va, vb = complex(a.xreplace(point).evalf(30)), complex(b.xreplace(point).evalf(30))
                if abs(va - vb) > tolerance * max(1.0, abs(va), abs(vb)):
                    return Disagreement({str(d): size for d in dims}, {str(i.label): v for i, v in values.items()},
                                        point, va.real, vb.real)
    return None
