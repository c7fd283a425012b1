"""Centred values x - mu exact in float32: the mean's rounding corrected in a second pass.

A kernel printed from a compact form computes centred values x - mu (``calculus/compact.py``), not
sum(x y) - mu sum(y).  In float32 the mean m itself is rounded: at |mu| = 1e4 its error (up to half
a unit in the last place of 1e4, ~5e-4, more from the summation) shifts every centred value by as
much, a relative error of 1e-3 in x_hat when sigma is about 1.  ``refine_means`` writes each
centred value x_e - m as (x_e - m) - sum_j (x_j - m) / n (the corrected two-pass algorithm of Chan,
Golub and LeVeque): near the mean x_e - m is exact, the correction sums small exact differences,
and ``Kept`` makes the schedule compute x - m before the correction meets it.  Mathematically the
rewrite changes nothing; it costs one more pass over the input.
"""

from __future__ import annotations

import sympy as sp

from ..calculus.indices import bound_indices
from ..calculus.rules import bottom_up
from ..model import OperatorModel, dim_of
from .cse import Kept


def _as_mean(node: sp.Expr, inputs: set) -> tuple[sp.Expr, sp.Sum, sp.Expr] | None:
    """(c, sum_j x[..j..], n) when ``node`` is c times that sum over its n terms, x an input entry."""
    if not isinstance(node, sp.Mul):
        return None
    sums = [f for f in node.args if isinstance(f, sp.Sum)]
    if len(sums) != 1 or not isinstance(sums[0].function, sp.Indexed) or sums[0].function.base not in inputs:
        return None
    count = sp.Mul(*(dim_of(var) for var in bound_indices(sums[0])))
    coefficient = sp.simplify(sp.Mul(*(f for f in node.args if f is not sums[0])) * count)
    return (coefficient, sums[0], count) if coefficient.is_number else None


def refine_means(expr: sp.Expr, model: OperatorModel) -> sp.Expr:
    """Every x_e - m in ``expr``, m the mean of input x, as Kept(x_e - m) - mean_j Kept(x_j - m)."""
    inputs = {inp.base for inp in model.inputs}

    def centre(node: sp.Expr) -> sp.Expr:
        if not isinstance(node, sp.Add):
            return node
        for term in node.args:
            found = _as_mean(term, inputs)
            if found is None or found[0] != -1:
                continue
            _, total, count = found
            entry = next((a for a in node.args if isinstance(a, sp.Indexed) and a.base == total.function.base), None)
            if entry is not None:
                mean = total / count
                rest = [a for a in node.args if a not in (entry, term)]
                correction = sp.Sum(Kept(total.function - mean), *total.limits) / count
                return sp.Add(Kept(entry - mean), -correction, *rest)
        return node

    return bottom_up(centre)(expr)
