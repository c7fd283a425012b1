"""Vector-Jacobian and Jacobian-vector products by symbolic contraction of the Jacobian entry.

vjp:  dx[k] = sum_i dy[i] J[i, k]      jvp:  dot_y[i] = sum_k J[i, k] dot_x[k]

The contraction sums are simplified by the same rules as the Jacobian, so deltas collapse and
what is left are reductions of O(input) cost; a term that still couples two indices of one size
is reported by the printer, never materialised.
"""

from __future__ import annotations

import sympy as sp

from ..model import ScalarEntry
from .rules import simplify


def contract(weights: sp.Indexed, entry: sp.Expr, over: tuple[sp.Idx, ...]) -> sp.Expr:
    """sum over ``over`` of ``weights * entry``, one sum per index, term by term, simplified."""
    terms = []
    for term in sp.Add.make_args(entry):
        summand = weights * term
        for idx in over:
            summand = sp.Sum(summand, (idx, idx.lower, idx.upper))
        terms.append(summand)
    return simplify(sp.Add(*terms))


def vjp(cotangent: sp.IndexedBase, jacobian: sp.Expr, output_indices: tuple[sp.Idx, ...]) -> sp.Expr:
    """The gradient entry dx[k] for cotangent dy[i...]."""
    weights = cotangent[output_indices] if output_indices else sp.Symbol(str(cotangent))
    return contract(weights, jacobian, output_indices)


def jvp(tangent: sp.IndexedBase, jacobian: sp.Expr, wrt_indices: tuple[sp.Idx, ...]) -> sp.Expr:
    """The output tangent entry dot_y[i] contributed by tangent dot_x[k...]."""
    weights = tangent[wrt_indices] if wrt_indices else ScalarEntry(tangent)  # placed as its input
    return contract(weights, jacobian, wrt_indices)
