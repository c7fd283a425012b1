"""Named rewrites of index expressions, each one step ("before -> after"), repeated by ``simplify``.

Together they turn a raw derivative full of Kronecker deltas into its structure: deltas collapsed
against the sums that bind them (using the declared index ranges, so no Piecewise guard appears),
factors that do not depend on a summation index moved out of its sum, sums of constants counted.
None of them expands a power or a function, so centred forms such as (x_j - mu)^2 survive intact.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import sympy as sp

from .indices import bound_indices, canonical_dummies, free_indices, substitute_index


def bottom_up(rule: Callable[[sp.Expr], sp.Expr]) -> Callable[[sp.Expr], sp.Expr]:
    """Apply ``rule`` to every node, children first (a sum none of whose parts changed is kept, not
    built again: SymPy's Sum constructor is slow).  A function of the expression alone, remembered
    per process: ``simplify`` runs every pass over the whole expression each round, and most of it
    is what the last round left."""

    @functools.lru_cache(maxsize=16384)
    def walk(expr: sp.Expr) -> sp.Expr:
        if expr.args and not expr.is_Atom and not isinstance(expr, (sp.Indexed, sp.Idx)):
            args = [walk(arg) for arg in expr.args]
            if not isinstance(expr, sp.Sum) or any(new != old for new, old in zip(args, expr.args)):
                expr = expr.func(*args)
        return rule(expr)

    walk.__name__ = rule.__name__
    return walk


def distribute_over_deltas(expr: sp.Expr) -> sp.Expr:
    """a (delta_jk + b) -> a delta_jk + a b: separate the terms a delta can collapse."""
    if not isinstance(expr, sp.Mul):
        return expr
    for position, factor in enumerate(expr.args):
        if isinstance(factor, sp.Add) and factor.has(sp.KroneckerDelta):
            rest = sp.Mul(*(expr.args[:position] + expr.args[position + 1:]))
            return sp.Add(*[distribute_over_deltas(rest * term) for term in factor.args])
    return expr


def separate_summand(expr: sp.Expr) -> sp.Expr:
    """sum_j a (b_j + c_k) -> sum_j (a b_j + a c_k): split a factor that mixes j with another index."""
    if not isinstance(expr, sp.Sum) or not isinstance(expr.function, sp.Mul):
        return expr
    own = set(bound_indices(expr))
    factors = expr.function.args
    for position, factor in enumerate(factors):
        indices = free_indices(factor)
        if isinstance(factor, sp.Add) and indices & own and indices - own:
            rest = sp.Mul(*(factors[:position] + factors[position + 1:]))
            return sp.Sum(sp.Add(*[rest * term for term in factor.args]), *expr.limits)
    return expr


def split_sum_over_add(expr: sp.Expr) -> sp.Expr:
    """sum_j (a_j + b_j) -> sum_j a_j + sum_j b_j (linearity)."""
    if isinstance(expr, sp.Sum) and isinstance(expr.function, sp.Add):
        return sp.Add(*[sp.Sum(term, *expr.limits) for term in expr.function.args])
    return expr


def pull_factors_out_of_sum(expr: sp.Expr) -> sp.Expr:
    """sum_j c a_j -> c sum_j a_j when c does not depend on j; sum_j c -> n c."""
    if not isinstance(expr, sp.Sum):
        return expr
    own = set(bound_indices(expr))
    outside: list[sp.Expr] = []
    inside: list[sp.Expr] = []
    for factor in sp.Mul.make_args(expr.function):
        (inside if free_indices(factor) & own else outside).append(factor)
    body = sp.Mul(*inside)
    used = free_indices(body)
    count, limits = sp.S.One, []
    for var, lower, upper in expr.limits:
        if var in used:
            limits.append((var, lower, upper))
        else:
            count *= upper - lower + 1
    if not outside and len(limits) == len(expr.limits):
        return expr
    return sp.Mul(*outside) * count * (sp.Sum(body, *limits) if limits else body)


def collapse_kronecker_sum(expr: sp.Expr) -> sp.Expr:
    """sum_j delta_jk g_j -> g_k when k ranges within the limits of j."""
    if not isinstance(expr, sp.Sum):
        return expr
    for position, (var, lower, upper) in enumerate(expr.limits):
        for delta in delta_factors(expr.function):
            if var not in delta.args:
                continue
            other = delta.args[1] if delta.args[0] == var else delta.args[0]
            if var in free_indices(other) or not _within(other, lower, upper):
                continue
            body = substitute_index(without_factor(expr.function, delta), var, other)
            limits = expr.limits[:position] + expr.limits[position + 1:]
            return sp.Sum(body, *limits) if limits else body
    return expr


def delta_factors(expr: sp.Expr) -> list[sp.KroneckerDelta]:
    """The Kronecker deltas that multiply all of ``expr`` (also through every branch of a Piecewise,
    which SymPy folds the summand into)."""
    found = []
    for factor in sp.Mul.make_args(expr):
        if isinstance(factor, sp.KroneckerDelta):
            found.append(factor)
        elif isinstance(factor, sp.Piecewise):
            branches = [value for value, _ in factor.args if value != 0]
            if branches:
                found += [d for d in delta_factors(branches[0])
                          if all(d in delta_factors(other) for other in branches[1:])]
    return found


def without_factor(expr: sp.Expr, delta: sp.KroneckerDelta) -> sp.Expr:
    """``expr`` with one factor ``delta`` (found by ``delta_factors``) divided out."""
    factors = list(sp.Mul.make_args(expr))
    if delta in factors:
        factors.remove(delta)
        return sp.Mul(*factors)
    for position, factor in enumerate(factors):
        if isinstance(factor, sp.Piecewise) and delta in delta_factors(factor):
            branches = [(without_factor(v, delta) if v != 0 else v, c) for v, c in factor.args]
            factors[position] = sp.Piecewise(*branches)
            return sp.Mul(*factors)
    raise ValueError(f"{delta} is not a factor of {expr}")


def square_of_delta(expr: sp.Expr) -> sp.Expr:
    """delta_jk^n -> delta_jk for a positive integer power n."""
    if isinstance(expr, sp.Pow) and isinstance(expr.base, sp.KroneckerDelta):
        if expr.exp.is_integer and expr.exp.is_positive:
            return expr.base
    return expr


def delta_out_of_piecewise(expr: sp.Expr) -> sp.Expr:
    """Piecewise((delta_jk a, c), (0, True)) -> delta_jk Piecewise((a, c), (0, True)); a branch may be
    a sum whose every term has the factor (delta_jk a + delta_jk b, as a product rule leaves it)."""
    if not isinstance(expr, sp.Piecewise):
        return expr
    values = [value for value, _ in expr.args]
    nonzero = [v for v in values if v != 0]
    if not nonzero:
        return expr
    for factor in sp.Mul.make_args(sp.Add.make_args(nonzero[0])[0]):
        if isinstance(factor, sp.KroneckerDelta) and all(_every_term_has(v, factor) for v in nonzero):
            branches = [(_every_term_without(v, factor) if v != 0 else v, c) for v, c in expr.args]
            return factor * sp.Piecewise(*branches)
    return expr


def _every_term_has(value: sp.Expr, factor: sp.Expr) -> bool:
    return all(factor in sp.Mul.make_args(term) for term in sp.Add.make_args(value))


def _every_term_without(value: sp.Expr, factor: sp.Expr) -> sp.Expr:
    return sp.Add(*(sp.Mul(*[f for f in sp.Mul.make_args(term) if f != factor]) for term in sp.Add.make_args(value)))


def sum_into_piecewise(expr: sp.Expr) -> sp.Expr:
    """sum_j Piecewise((a_j, c), (b_j, True)) -> Piecewise((sum_j a_j, c), (sum_j b_j, True)) when no
    condition depends on j (a per-row condition such as ||x|| > eps): each branch then contracts."""
    if not isinstance(expr, sp.Sum):
        return expr
    own = set(bound_indices(expr))
    factors = sp.Mul.make_args(expr.function)
    for position, factor in enumerate(factors):
        if isinstance(factor, sp.Piecewise) and not any(free_indices(c) & own for _, c in factor.args):
            rest = sp.Mul(*(factors[:position] + factors[position + 1:]))
            return sp.Piecewise(*[(sp.Sum(rest * value, *expr.limits), condition)
                                  for value, condition in factor.args])
    return expr


def abs_times_sign(expr: sp.Expr) -> sp.Expr:
    """|u| sign(u) -> u (the entries are real; both sides are 0 at u = 0)."""
    if not isinstance(expr, sp.Mul):
        return expr
    factors = list(expr.args)
    for factor in factors:
        if isinstance(factor, sp.Abs) and sp.sign(factor.args[0]) in factors:
            factors.remove(factor)
            factors.remove(sp.sign(factor.args[0]))
            return sp.Mul(factor.args[0], *factors)
    return expr


def pull_numeric_content(expr: sp.Expr) -> sp.Expr:
    """2 a - 2 b -> 2 (a - b), so the number can cancel against the rest of its product."""
    if isinstance(expr, sp.Add):
        content, rest = expr.primitive()
        if content != 1:
            return sp.Mul(content, rest, evaluate=False)
    return expr


def _within(value: sp.Expr, lower: sp.Expr, upper: sp.Expr) -> bool:
    """Whether an index expression provably stays in [lower, upper] (from its declared range)."""
    if isinstance(value, sp.Idx):
        low, high = value.lower, value.upper
    elif value.is_Integer:
        low = high = value
    else:
        return False
    return bool(sp.simplify(low - lower).is_nonnegative) and bool(sp.simplify(upper - high).is_nonnegative)


PASSES: tuple[Callable[[sp.Expr], sp.Expr], ...] = (
    bottom_up(square_of_delta),
    bottom_up(abs_times_sign),
    bottom_up(delta_out_of_piecewise),
    bottom_up(distribute_over_deltas),
    bottom_up(separate_summand),
    bottom_up(split_sum_over_add),
    bottom_up(sum_into_piecewise),
    bottom_up(pull_factors_out_of_sum),
    bottom_up(collapse_kronecker_sum),
    bottom_up(pull_numeric_content),
    canonical_dummies,
)


def simplify(expr: sp.Expr, max_rounds: int = 50) -> sp.Expr:
    """Run every pass until nothing changes."""
    stages = simplification_stages(expr, max_rounds)
    return stages[-1][1] if stages else expr


def simplification_stages(expr: sp.Expr, max_rounds: int = 50) -> list[tuple[str, sp.Expr]]:
    """``simplify`` traced: (name of the pass, expression after it) for every pass that changed it."""
    stages: list[tuple[str, sp.Expr]] = []
    for _ in range(max_rounds):
        before = expr
        for rewrite in PASSES:
            after = rewrite(expr)
            if after != expr:
                stages.append((rewrite.__name__, after))
            expr = after
        if expr == before:
            return stages
    raise RuntimeError(f"simplification did not settle after {max_rounds} rounds: {expr}")
