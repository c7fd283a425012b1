"""A traced model's finishing touches: stabilising maxima dropped, names given, indices named.

Code subtracts a row's maximum before ``exp`` so that it cannot overflow; the formula does not change
with it.  ``stabilized`` replaces each maximum by an arbitrary shift at random points of small sizes
and, where the output stays the same, drops it, declaring ``shift_invariant`` when the maximum was
over an input's axis (as ``derive/ops/softmax.py`` is written); any other maximum stays a ``max_over``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import replace

import numpy as np
import sympy as sp

from ..functions import max_over
from ..operator import Input, OperatorModel, Param

SIZES = (2, 3)
POINTS = 3


def stabilized(output: sp.Expr, named: list[tuple[str, sp.Expr]], inputs: list[Input],
               params: list[Param]) -> tuple[sp.Expr, tuple[tuple[str, sp.Expr], ...], tuple]:
    """The output without the maxima it does not depend on, the named reductions, the shifts."""
    shifts: list[tuple[str, sp.Expr]] = []
    dropped = False
    for maximum in sorted(output.atoms(max_over), key=sp.count_ops):
        if not output.has(maximum):
            continue
        if _invariant(output, maximum, inputs, params):
            output = output.xreplace({maximum: sp.S.Zero})
            named = [(n, d.xreplace({maximum: sp.S.Zero})) for n, d in named]
            dropped = True
            shift = _input_axis(maximum, inputs)
            if shift is not None and shift not in shifts:
                shifts.append(shift)
    if dropped:
        shifts = [s for s in shifts if _shift_invariant(output, s, inputs, params)]
    where = tuple((n, d) for n, d in named if d.has(sp.Sum, max_over) and _appears(d, output))
    return output, where, tuple(shifts)


def _appears(part: sp.Expr, expr: sp.Expr) -> bool:
    """``part`` is in ``expr`` as it is, as its reciprocal, or as its root's radicand (1/sqrt(v))."""
    return expr.has(part) or expr.has(1 / part) or (part.is_Pow and expr.has(part.base))


def _input_axis(maximum: max_over, inputs: list[Input]) -> tuple[str, sp.Expr] | None:
    body, index = maximum.args[0], maximum.args[1]
    if not isinstance(body, sp.Indexed):
        return None
    for inp in inputs:
        if body.base == inp.base and body.indices.count(index) == 1:
            return inp.name, inp.dims[body.indices.index(index)]
    return None


def _invariant(output: sp.Expr, maximum: max_over, inputs: list[Input], params: list[Param]) -> bool:
    """The output is the same with the maximum replaced by any other value (per entry it depends on)."""
    free = sorted(_free(maximum), key=str)
    shift = sp.IndexedBase("_shift")[tuple(free)] if free else sp.Symbol("_shift")
    moved = output.xreplace({maximum: shift})
    return _same(moved, moved.xreplace({shift: 0}), inputs, params)


def _shift_invariant(output: sp.Expr, shift: tuple[str, sp.Expr], inputs: list[Input], params: list[Param]) -> bool:
    """Adding one number to a whole row of the input (along the axis) leaves the output as it is."""
    name, size = shift
    inp = next(i for i in inputs if i.name == name)
    position = inp.dims.index(size)
    offset = sp.IndexedBase("_offset")

    def moved(entry: sp.Indexed) -> sp.Expr:
        rest = entry.indices[:position] + entry.indices[position + 1:]
        return entry + (offset[rest] if rest else sp.Symbol("_offset"))
    shifted = output.replace(lambda e: isinstance(e, sp.Indexed) and e.base == inp.base, moved)
    return _same(output, shifted, inputs, params)


def _free(expr: sp.Expr) -> set[sp.Idx]:
    bound = {limit[0] for s in expr.atoms(sp.Sum) for limit in s.limits} | {m.args[1] for m in expr.atoms(max_over)}
    return {i for i in expr.atoms(sp.Idx) if i not in bound}


def _same(left: sp.Expr, right: sp.Expr, inputs: list[Input], params: list[Param]) -> bool:
    rng = np.random.default_rng(7)
    dims = {d for inp in inputs for d in inp.dims} | {i.upper + 1 for i in left.atoms(sp.Idx)} - {sp.S.One}
    symbols = [d for d in dims if isinstance(d, sp.Symbol)]
    for sizes in itertools.islice(itertools.product(SIZES, repeat=len(symbols)), POINTS):
        at = dict(zip(symbols, map(sp.Integer, sizes)))
        at.update({p.symbol: sp.Float(rng.uniform(0.3, 1.5)) for p in params if p.symbol is not None})
        memo: dict[sp.Expr, sp.Float] = {}
        a, b = _value(left, at, memo, rng), _value(right, at, memo, rng)
        if a is None or b is None or not np.isclose(a, b, rtol=1e-9, atol=1e-12):
            return False
    return True


def _value(expr: sp.Expr, at: dict, memo: dict, rng: np.random.Generator) -> complex | None:
    """The expression at these sizes and parameters, every free index at 0 and entries random
    (the same entry the same number on both sides: ``memo``)."""
    concrete = expr.xreplace(at)
    concrete = concrete.replace(lambda e: isinstance(e, max_over), _unrolled)
    concrete = concrete.doit()
    free = {i: 0 for i in concrete.atoms(sp.Idx)}
    concrete = concrete.xreplace(free)
    entries = sorted(concrete.atoms(sp.Indexed, sp.Symbol), key=sp.default_sort_key)
    for entry in entries:
        memo.setdefault(entry, sp.Float(rng.standard_normal()))
    try:
        return complex(concrete.xreplace(memo).evalf())
    except (TypeError, ValueError):
        return None


def _unrolled(maximum: max_over) -> sp.Expr:
    body, index = maximum.args[0], maximum.args[1]
    return sp.Max(*(body.xreplace({index: sp.Integer(v)}) for v in range(int(index.lower), int(index.upper) + 1)))


def renamed(model: OperatorModel, taken: Iterable[str]) -> OperatorModel:
    """The model with its indices named i, j, l, ... (output positions first), none clashing with
    another name of the model."""
    exprs = [model.output, *(d for _, d in model.where)]
    order = list(model.output_indices)
    for expr in exprs:
        order += sorted((i for i in expr.atoms(sp.Idx) if i not in order), key=lambda i: str(i.label))
    names = (n for n in _index_names() if n not in set(taken))
    mapping = {old: sp.Idx(next(names), (old.lower, old.upper)) for old in order}
    return replace(model, output_indices=tuple(mapping[i] for i in model.output_indices),
                   output=model.output.xreplace(mapping),
                   where=tuple((n, d.xreplace(mapping)) for n, d in model.where))


def _index_names() -> Iterable[str]:
    letters = "ijlmpqrstuvwabcfgh"
    yield from letters
    for number in itertools.count(2):
        yield from (f"{letter}{number}" for letter in letters)
