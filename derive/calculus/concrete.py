"""Index expressions at concrete sizes: expanded into scalar symbols, and compared at random points.

``expand`` fixes every axis size and every free index, expands the finite sums, and names each
entry ``x[2, 0]`` as the symbol ``x_2_0``; an open derivative ``Partial(f, x[k])`` becomes plain
``sympy.diff`` of the expanded ``f`` by the entry symbol (or, written out only to be evaluated at
numbers, an ``EntryDerivative`` that ``floats.evaluate`` works out by forward mode), so unfinished
derivation steps can be evaluated too; ``compare`` evaluates two index expressions at random
points for several sizes and returns the first disagreement.  Used to check derivation steps and
hand-written claims where SymPy cannot decide an identity symbolically.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Iterable
from dataclasses import dataclass

import sympy as sp

from ..model import domains, free_sizes
from .differentiate import Partial
from .floats import EntryDerivative, agree
from .floats import NotNumeric as NotNumeric
from .floats import evaluate as evaluate
from .indices import free_indices


def entry_symbol(base: str, at: Iterable[int], real: bool = False) -> sp.Symbol:
    name = "_".join([base, *(str(v) for v in at)])
    return sp.Symbol(name, real=True) if real else sp.Symbol(name)


def expand(expr: sp.Expr, sizes: dict[sp.Symbol, int], values: dict[sp.Idx, int]) -> sp.Expr:
    """``expr`` with the sizes and free indices fixed, sums expanded, entries as plain symbols."""
    return _expand(expr, tuple(sizes.items()), tuple((i.label.name, v) for i, v in values.items()))


def expand_all(expr: sp.Expr, sizes: dict[sp.Symbol, int], values: list[dict[sp.Idx, int]]) -> list[sp.Expr]:
    """``expand`` at each assignment of the free indices in ``values``, in one pass: a sum that
    does not depend on the index that changes (a row's mean) is written out once for all."""
    state = _Concrete({symbol: sp.Integer(v) for symbol, v in sizes.items()})
    return [state.at(expr, {i.label.name: sp.Integer(v) for i, v in at.items()}) for at in values]


def expander(sizes: dict[sp.Symbol, int], real: bool = False, evaluate: bool = True):
    """``expand`` at fixed ``sizes`` for many expressions and index values, as one pass: a sum met
    again with the same values of its free indices (a row's mean in both sides of an equation, or
    at every entry of the row) is written out once.  ``real``: entry symbols are real (SymPy then
    need not work out whether tanh(...) of a long sum is real, which can take seconds).
    ``evaluate=False``: sums, products and powers of symbols are built as they stand, not put in
    SymPy's canonical form (for expressions that are only evaluated at numbers)."""
    state = _Concrete({symbol: sp.Integer(v) for symbol, v in sizes.items()}, real, evaluate)

    def at(expr: sp.Expr, values: dict[sp.Idx, int]) -> sp.Expr:
        return state.at(expr, {i.label.name: sp.Integer(v) for i, v in values.items()})
    return at


@functools.lru_cache(maxsize=4096)
def _expand(expr: sp.Expr, sizes: tuple, values: tuple) -> sp.Expr:
    fixed = {symbol: sp.Integer(v) for symbol, v in sizes}
    return _Concrete(fixed).at(expr, {name: sp.Integer(v) for name, v in values})


@functools.lru_cache(maxsize=65536)
def _index_names(expr: sp.Expr) -> tuple[str, ...]:
    """The names of the indices free in ``expr``, sorted (what its concrete value depends on)."""
    return tuple(sorted(i.label.name for i in free_indices(expr)))


class _Concrete:
    """One pass over an expression at fixed sizes; a sum or an open derivative met again with the
    same values of its free indices (an inner mean inside an outer sum) is expanded once."""

    def __init__(self, fixed: dict, real: bool = False, evaluate: bool = True) -> None:
        self.fixed, self.real, self.evaluate = fixed, real, evaluate
        self.memo: dict[tuple, sp.Expr] = {}

    def at(self, expr: sp.Expr, indices: dict[str, sp.Integer]) -> sp.Expr:
        if not isinstance(expr, (sp.Sum, Partial)):
            return _concrete(expr, self, indices)
        key = (expr, tuple(indices.get(name) for name in _index_names(expr)))
        if key not in self.memo:
            self.memo[key] = _concrete(expr, self, indices)
        return self.memo[key]


def _concrete(expr: sp.Expr, state: _Concrete, indices: dict[str, sp.Integer]) -> sp.Expr:
    """Indices and sizes to integers, sums written out, entries to symbols, open derivatives by
    ``sympy.diff``.  ``indices`` maps index names to their current values."""
    fixed = state.fixed
    if isinstance(expr, sp.Idx):
        value = indices.get(expr.label.name)  # .name: str() of a Symbol runs the printer
        if value is None:
            raise ValueError(f"no value for the index {expr.label}")
        return value
    if expr in fixed:
        return fixed[expr]
    if not expr.args:
        return expr
    if isinstance(expr, sp.Indexed):
        return entry_symbol(expr.base.name, (int(state.at(i, indices)) for i in expr.indices), state.real)
    if isinstance(expr, Partial):
        function, by = state.at(expr.args[0], indices), state.at(expr.args[1], indices)
        # only evaluated at numbers: left to forward mode (floats.py), not built by sympy.diff
        return _real_diff(function, by) if state.evaluate else EntryDerivative(function, by)
    if hasattr(expr, "unroll"):  # a function that binds an index (max_over) writes itself out
        return expr.unroll(lambda part, values: state.at(part, {**indices, **values}))
    if isinstance(expr, sp.Sum):
        return _unroll(expr, state, indices)
    if isinstance(expr, (sp.Max, sp.Min)):  # comparing symbolic arguments is slow; numbers decide later
        return expr.func(*[state.at(arg, indices) for arg in expr.args], evaluate=False)
    args = [state.at(arg, indices) for arg in expr.args]
    if not state.evaluate and isinstance(expr, (sp.Add, sp.Mul, sp.Pow)) and not all(a.is_Number for a in args):
        return expr.func(*args, evaluate=False)  # (index arithmetic and sum limits stay numbers)
    return expr.func(*args)


def _real_diff(expr: sp.Expr, by: sp.Symbol) -> sp.Expr:
    """``sympy.diff``, with every entry taken as real (as they are) where that matters: for a complex
    symbol, |u|, sign(u), max and min have no derivative."""
    if not expr.has(sp.Abs, sp.sign, sp.Max, sp.Min):
        return sp.diff(expr, by)
    real = {s: sp.Symbol(s.name, real=True) for s in symbols_of(expr) | {by} if not s.is_real}
    return sp.diff(expr.xreplace(real), real.get(by, by)).xreplace({r: s for s, r in real.items()})


def _unroll(expr: sp.Sum, state: _Concrete, indices: dict[str, sp.Integer]) -> sp.Expr:
    """A sum with integer limits written out, its variables bound in turn (innermost first)."""
    ranges, body = [], expr.function
    for var, lower, upper in reversed(expr.limits):
        low, high = state.at(lower, indices), state.at(upper, indices)
        if not (low.is_Integer and high.is_Integer):
            raise ValueError(f"the limits of {expr} are not integers at these sizes")
        if not isinstance(var, sp.Idx):  # a plain summation symbol: bind it as an index of that name
            body = body.xreplace({var: sp.Idx(var.name)})
        name = var.label.name if isinstance(var, sp.Idx) else var.name
        ranges.append((name, range(int(low), int(high) + 1)))
    terms = []
    for values in itertools.product(*(r for _, r in ranges)):
        inner = dict(indices)
        inner.update({name: sp.Integer(v) for (name, _), v in zip(ranges, values)})
        terms.append(state.at(body, inner))
    return sp.Add(*terms, evaluate=state.evaluate)


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


def symbols_of(expr: sp.Basic) -> set[sp.Symbol]:
    """``expr.free_symbols``, each distinct subexpression visited once (``free_symbols`` walks a
    concrete expression, a DAG, as a tree); a node that may bind symbols (a Sum, a Derivative)
    is asked for its own."""
    found: set[sp.Symbol] = set()
    seen: set[sp.Basic] = set()
    pending = [expr]
    while pending:
        node = pending.pop()
        if node in seen:
            continue
        seen.add(node)
        if node.is_Symbol:
            found.add(node)
        elif isinstance(node, (sp.Add, sp.Mul, sp.Pow, EntryDerivative)) or (isinstance(node, sp.Function) and
                                                           not isinstance(node, sp.Derivative)):
            pending.extend(node.args)
        elif node.args:
            found |= node.free_symbols
    return found


def random_point(symbols: Iterable[sp.Symbol], rng: random.Random, labels: dict[str, int] | None = None,
                 where: dict[str, domains.Domain] | None = None) -> dict[sp.Symbol, sp.Expr]:
    """Random values in [-2, 2] (positive symbols in (0.05, 1]) at 30 significant digits; the
    entries of an input named in ``labels`` are integer class labels below the number given, those
    of an input or the parameter symbol named in ``where`` values in its domain (``model/domains.py``)."""
    point = {}
    for symbol in sorted(symbols, key=str):
        bound = _label_bound(str(symbol), labels or {})
        if bound is not None:
            point[symbol] = sp.Integer(rng.randrange(bound))
            continue
        owner = next((d for name, d in (where or {}).items() if _label_bound(str(symbol), {name: 0}) is not None), None)
        if owner is not None:
            point[symbol] = sp.Float(domains.draw_scalar(owner, rng), 30)
            continue
        low, high = (0.05, 1.0) if symbol.is_positive else (-2.0, 2.0)
        point[symbol] = sp.Float(rng.uniform(low, high), 30)
    return point


def _label_bound(name: str, labels: dict[str, int]) -> int | None:
    """The bound of the label input whose entry symbol (``target_3``, or ``target``) this is."""
    for base, bound in labels.items():
        rest = name[len(base) + 1:].split("_") if name.startswith(base + "_") else None
        if name == base or (rest and all(part.isdigit() for part in rest)):
            return bound
    return None


def distinct_sizes(dims: Iterable[sp.Symbol], size: int) -> dict[sp.Symbol, int]:
    """Each axis its own length, ``size`` for the first and one more for each next one, so that
    a formula that confuses two axes (N where S belongs) cannot agree by accident."""
    return {d: size + position for position, d in enumerate(free_sizes(dims))}


def compare(left: sp.Expr, right: sp.Expr, dims: tuple[sp.Symbol, ...], *, sizes: Iterable[int] = (1, 2, 3, 4),
            trials: int = 3, seed: int = 0, tolerance: float = 1e-12,
            entries: int | None = None, distinct: bool = False,
            where: dict[str, domains.Domain] | None = None) -> Disagreement | None:
    """The first point where ``left`` and ``right`` differ, over several sizes, or None (``where``:
    the declared domains, as ``random_point`` takes them).

    At each size every axis has that length, or with ``distinct`` each its own (``distinct_sizes``,
    so that N and S cannot be confused).  Every combination of free index values is tried, or
    ``entries`` of them drawn at random.
    """
    rng = random.Random(seed)
    indices = sorted(free_indices(left) | free_indices(right), key=lambda i: str(i.label))
    dims = free_sizes(dims)
    for size in sizes:
        fixed = distinct_sizes(dims, size) if distinct else {d: size for d in dims}
        ranges = [range(int((i.upper - i.lower + 1).subs(fixed))) for i in indices]
        combos = list(itertools.product(*ranges))
        if entries is not None and len(combos) > entries:
            combos = rng.sample(combos, entries)
        for at in combos:
            values = dict(zip(indices, at))
            a, b = expand(left, fixed, values), expand(right, fixed, values)
            for _ in range(trials):
                point = random_point(symbols_of(a) | symbols_of(b), rng, where=where)
                if agree(a, b, point):
                    continue  # equal in float64; a difference is confirmed in 30 digits
                va, vb = _value(a, point), _value(b, point)
                if abs(va - vb) > tolerance * max(1.0, abs(va), abs(vb)):
                    where = {str(i.label): v for i, v in values.items()}
                    return Disagreement({str(d): v for d, v in fixed.items()}, where, point, va.real, vb.real)
    return None


def _value(expr: sp.Expr, point: dict[sp.Symbol, sp.Expr]) -> complex:
    """``expr`` at ``point`` (30-digit Floats): substituted first, so SymPy folds the numbers as it
    rebuilds the tree, then evaluated (``evalf(subs=...)`` walks it again per node, ~10x slower)."""
    return complex(substituted(expr, point).evalf(30))


def substituted(expr: sp.Basic, rule: dict) -> sp.Basic:
    """``expr.xreplace(rule)``, each distinct subexpression rebuilt once: a concrete expression is a
    DAG (a row's mean appears in every entry of the row), which ``xreplace`` walks as a tree."""
    memo: dict[sp.Basic, tuple[sp.Basic, bool]] = {}

    def walk(node: sp.Basic) -> tuple[sp.Basic, bool]:  # as Basic._xreplace: (result, replaced?)
        if node in rule:
            return rule[node], True
        if node not in memo:
            parts = [walk(arg) if isinstance(arg, sp.Basic) else (arg, False) for arg in node.args]
            changed = any(replaced for _, replaced in parts)
            memo[node] = (node.func(*(part for part, _ in parts)) if changed else node), changed
        return memo[node]
    return walk(expr)[0] if rule else expr


def coincidence_patterns(ranges: list[range], axes: list[sp.Expr], rng: random.Random) -> list[tuple[int, ...]]:
    """One random assignment of index values per way of making some indices over the same axis
    equal and the rest distinct (a set partition per axis), where the ranges allow it."""
    groups: dict[sp.Expr, list[int]] = {}
    for position, axis in enumerate(axes):
        groups.setdefault(axis, []).append(position)
    out = []
    for partitions in itertools.product(*(list(_partitions(members)) for members in groups.values())):
        values = [0] * len(ranges)
        if all(_assign(blocks, ranges, rng, values) for blocks in partitions):
            out.append(tuple(values))
    return out


def _assign(blocks: list[list[int]], ranges: list[range], rng: random.Random, values: list[int]) -> bool:
    """Give the blocks of one axis distinct random values (equal within a block); False if too few."""
    used: set[int] = set()
    for block in blocks:
        allowed = [v for v in range(min(len(ranges[i]) for i in block)) if v not in used]
        if not allowed:
            return False
        value = rng.choice(allowed)
        used.add(value)
        for position in block:
            values[position] = ranges[position][value]
    return True


def _partitions(items: list[int]) -> Iterable[list[list[int]]]:
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for partition in _partitions(rest):
        yield [[first], *partition]
        for position in range(len(partition)):
            yield partition[:position] + [[first, *partition[position]]] + partition[position + 1:]
