"""Numerically stable forms for kernels, each checked against the plain form before it is used.

``stabilize`` finds the families of exponentials summed over an axis, exp(s_l) in sum_l exp(s_l),
and rewrites every exp(s_j) of a family to exp(s_j - m) with m = max_l s_l (over the unmasked l;
masked entries, which a 0/1 mask zeroes, get exp(min(s_j - m, 0)) so they cannot overflow).  A ratio
exp(s_j) / sum_l exp(s_l) (softmax inside attention, where the scores are not an input the kernel
could shift) is unchanged by the shift; a log-sum-exp log(sum_l exp(s_l)) becomes
m + log(sum_l exp(s_l - m)).  A rewrite is kept only if, with an arbitrary c in place of m, the
expression is unchanged (checked at random points), which is exactly when it is exact.
"""

from __future__ import annotations

import functools

import sympy as sp

from ..calculus.concrete import compare
from ..calculus.indices import canonical_dummies, free_indices, substitute_index
from ..model import OperatorModel, dim_of
from ..model.functions import at_most, max_over


@functools.lru_cache(maxsize=512)
def stabilize(expr: sp.Expr, model: OperatorModel) -> sp.Expr:
    """``expr`` in its stable form (see above); remembered, as the NumPy, Array API and numba
    kernels stabilise the same expressions."""
    if model.shift_invariant:
        return expr  # the kernel already shifts the input itself
    for number, (column, pattern, mask) in enumerate(_families(expr)):
        members = _members(expr, column, pattern)
        others = sorted(free_indices(pattern) - {column}, key=lambda i: str(i.label))
        shift = sp.IndexedBase(f"_shift{number}")[tuple(others)] if others else sp.Symbol(f"_shift{number}")
        shifted = expr.xreplace({node: sp.exp(node.args[0] - shift) for node in members})
        restored = shifted.replace(lambda e, shift=shift: isinstance(e, sp.log) and e.has(shift),
                                   lambda e, shift=shift: e + shift)
        for candidate in dict.fromkeys((restored, shifted)):  # log-sum-exp first, then plain ratios
            if compare(expr, candidate, model.dims(), sizes=(1, 2), trials=2, entries=1) is None:
                expr = candidate.xreplace({shift: max_over(pattern, column, mask)})
                if mask != 1:  # masked-out scores may exceed the masked max: clamp so exp cannot overflow
                    expr = expr.replace(lambda e: isinstance(e, sp.exp) and e.has(max_over),
                                        lambda e: sp.exp(sp.Min(e.args[0], 0)))
                break
    return expr


def _families(expr: sp.Expr) -> list[tuple[sp.Idx, sp.Expr, sp.Expr]]:
    """(l, s_l, mask_l) for each sum over l whose summand holds exp(s_l), times a 0/1 mask."""
    found: list[tuple[sp.Idx, sp.Expr, sp.Expr]] = []
    for node in sp.preorder_traversal(expr):
        if not isinstance(node, sp.Sum):
            continue
        for var, _, _ in node.limits:
            factors = sp.Mul.make_args(node.function)
            mask = sp.Mul(*[f for f in factors if isinstance(f, at_most) and var in free_indices(f)])
            for factor in factors:
                if isinstance(factor, sp.exp) and var in free_indices(factor):
                    key = (var, canonical_dummies(factor.args[0]))
                    if not any(_same(key, seen[:2]) for seen in found):
                        found.append((*key, mask))
    return found


def _same(a: tuple[sp.Idx, sp.Expr], b: tuple[sp.Idx, sp.Expr]) -> bool:
    return dim_of(a[0]) == dim_of(b[0]) and canonical_dummies(substitute_index(a[1], a[0], b[0])) == b[1]


def _members(expr: sp.Expr, column: sp.Idx, pattern: sp.Expr) -> list[sp.Expr]:
    """Every exp(s_j) in ``expr`` that is exp(s_l) with l renamed to an index of the same size."""
    members = []
    for node in expr.atoms(sp.exp):
        candidates = [i for i in free_indices(node) if dim_of(i) == dim_of(column)]
        if len(candidates) == 1 and _same((candidates[0], canonical_dummies(node.args[0])), (column, pattern)):
            members.append(node)
    return members
