"""Regroup a sum whose body couples two indices of one size into nested sums that do not.

``sum_r sum_j a[r, p] b[r, j]`` (p and j of one size) would print an n x n array; as
``sum_r a[r, p] (sum_j b[r, j])`` each body couples only what it must.  Likewise
``sum_r t[p, r] sum_j s[p, j] k[j, h] k[j, r]`` (h and r of one size) becomes
``sum_j s[p, j] k[j, h] (sum_r t[p, r] k[j, r])``.  The nested sums are flattened first (inner
summation variables renamed apart), then, while the body is coupled, one variable at a time is
summed over just the factors that mention it, when those couple nothing.  Exact: only the order
of summation changes.  The second order meets such sums (a parameter's gradient summed over the
batch along another input's tangent; attention's second derivative by its queries);
``merge_dependent_sums`` does not undo them (it refuses to couple one size twice).
"""

from __future__ import annotations

import sympy as sp

from ..calculus.indices import free_indices, fresh_index, index_names, substitute_index
from ..calculus.rules import bottom_up
from ..model import dim_of


def _coupled(indices) -> bool:
    dims = [dim_of(i) for i in indices]
    return len(dims) != len(set(dims))


def _flatten(expr: sp.Sum) -> tuple[list[sp.Expr], list[tuple]]:
    """The factors and limits of ``expr`` with every sum among its factors merged into it."""
    factors, limits = list(sp.Mul.make_args(expr.function)), list(expr.limits)
    taken = index_names(expr)
    while any(isinstance(f, sp.Sum) for f in factors):
        inner = next(f for f in factors if isinstance(f, sp.Sum))
        factors.remove(inner)
        body = inner.function
        for var, lower, upper in inner.limits:
            new = fresh_index(var, taken)
            taken.add(str(new.label))
            body = substitute_index(body, var, new)
            limits.append((new, lower, upper))
        factors.extend(sp.Mul.make_args(body))
    return factors, limits


def _nest(expr: sp.Expr) -> sp.Expr:
    if not isinstance(expr, sp.Sum) or not _coupled(free_indices(expr.function)):
        return expr
    factors, limits = _flatten(expr)
    while _coupled(free_indices(sp.Mul(*factors))):
        for limit in limits:
            users = [f for f in factors if limit[0] in free_indices(f)]
            if len(users) < len(factors) and not _coupled(set().union(*(free_indices(f) for f in users))):
                factors = [f for f in factors if f not in users] + [sp.Sum(sp.Mul(*users), limit)]
                limits.remove(limit)
                break
        else:
            return expr  # no regrouping helps: left as it was (the printer says why)
    return sp.Sum(sp.Mul(*factors), *limits) if limits else sp.Mul(*factors)


nest_sums = bottom_up(_nest)
"""Every coupled sum in an expression regrouped where its factors allow (see the module)."""
