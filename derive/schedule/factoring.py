"""Rewrites that group a full-size factor before the in-place lowering multiplies it in.

``a*b*c + a*d -> a*(b*c + d)`` and ``a*p + a*q + b -> a*(p + q) + b``: a factor spanning every
axis of the sum is then multiplied into one temporary once, not once per term.
"""

from __future__ import annotations

from collections import Counter

import sympy as sp

from ..calculus.indices import free_indices


def pull_common_factors(expr: sp.Expr) -> sp.Expr:
    """a*b*c + a*d -> a*(b*c + d): a common full-size factor is then multiplied in once.

    Applied to every sum in an expression, x*t10 + x*(-t11*t8) becomes x*(t10 - t11*t8).
    """
    if not isinstance(expr, sp.Add):
        return expr
    counts = [Counter(f for f in sp.Mul.make_args(t) if not f.is_Number) for t in expr.args]
    common = counts[0]
    for count in counts[1:]:
        common &= count
    if not common:
        return expr
    rest = [sp.Mul(*(Counter(sp.Mul.make_args(t)) - common).elements()) for t in expr.args]
    return sp.Mul(*common.elements(), sp.Add(*rest))


def group_shared_factors(expr: sp.Expr) -> sp.Expr:
    """a*p + a*q + b -> a*(p + q) + b for a full-size factor ``a`` shared by some of the terms.

    With p and q per-row, the full-size a is multiplied once, into one temporary instead of two.
    """
    if not isinstance(expr, sp.Add):
        return expr
    spans = free_indices(expr)
    terms = list(expr.args)
    # each term's factors in their order (not a set's): a tie in most_common breaks alike in every run
    shared = Counter(f for t in terms for f in dict.fromkeys(sp.Mul.make_args(t)) if free_indices(f) == spans)
    factor, count = next(iter(shared.most_common(1)), (None, 0))
    if count < 2 or count == len(terms):
        return expr
    inner = [sp.Mul(*(Counter(sp.Mul.make_args(t)) - Counter({factor: 1})).elements())
             for t in terms if factor in sp.Mul.make_args(t)]
    rest = [t for t in terms if factor not in sp.Mul.make_args(t)]
    return sp.Add(sp.Mul(factor, sp.Add(*inner), evaluate=False), group_shared_factors(sp.Add(*rest)))
