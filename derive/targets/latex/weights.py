"""Attention's results through its weights: P = softmax(q k^T / sqrt(E)) and P-bar = y-bar v^T.

A model whose output is a softmax-weighted average, y_ie = sum_l w_il g_le / Z_i with the named
normaliser Z_i = sum_l w_il (scaled dot-product attention: w_il = exp(q_i . k_l / sqrt(E)),
g = v), has results that read as they are usually written once the weights are named:
P_il = w_il / Z_i, and the cotangent reaching them, P-bar_il = sum_e y-bar_ie g_le.  ``through_weights``
writes every exponential w as Z P (Z cancels), gathers nested sums into one, and names each sum
over the value axis of y-bar times g as P-bar: q-bar_ph = (1/sqrt(E)) (sum_j P_pj P-bar_pj k_jh -
(sum_j P_pj k_jh) sum_j P_pj P-bar_pj).  Display only: the document checks each displayed form with
P and P-bar written out against the exact one (``Equations.add``).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ...calculus.compact import Named, tidy
from ...calculus.indices import (
    canonical_dummies,
    free_indices,
    fresh_index,
    index_names,
    substitute_index,
    substitute_indices,
)
from ...calculus.pipeline import COTANGENT, Derivation
from ...display.latex import VJP_PREFIX
from ...model import dim_of

WEIGHT = "P"
WEIGHT_BAR = VJP_PREFIX + WEIGHT


@dataclass(frozen=True)
class Weights:
    normaliser: Named
    """Z, a sum over the key axis of the weights."""
    weight: sp.Expr
    """w_il: Z's summand, free in the query index and the key index."""
    query: sp.Idx
    key: sp.Idx
    value: sp.Expr
    """g_le: what the output averages, at the key index and the output's last index."""
    out: sp.Idx


def softmax_weights(derivation: Derivation) -> Weights | None:
    """The weights of a softmax-weighted average (attention's), or None for any other model."""
    rewriter = derivation.rewriter
    output = rewriter.output.definition
    for named in rewriter.named:
        definition = named.definition
        if not (isinstance(definition, sp.Sum) and len(definition.limits) == 1 and len(named.free) == 1):
            continue
        key, weight = definition.limits[0][0], definition.function
        sums = [f for f in sp.Mul.make_args(output) if isinstance(f, sp.Sum)]
        rest = sp.Mul(*[f for f in sp.Mul.make_args(output) if not isinstance(f, sp.Sum)])
        if len(sums) != 1 or rest != 1 / named.at(named.free) or not weight.has(sp.exp):
            continue
        inner, query = sums[0], named.free[0]
        column = inner.limits[0][0]
        powers = [f for f in sp.Mul.make_args(inner.function) if isinstance(f, sp.exp)]
        value = sp.Mul(*[f for f in sp.Mul.make_args(inner.function) if not isinstance(f, sp.exp)])
        weights = Named("w", weight, (query, key))
        if (len(powers) != 1 or value.has(sp.exp) or len(derivation.model.output_indices) != 2
                or canonical_dummies(powers[0]) != canonical_dummies(weights.written_at((query, column)))):
            continue
        out = derivation.model.output_indices[1]
        return Weights(named, weight, query, key, substitute_index(value, column, key), out)
    return None


def _weight(weights: Weights, query: sp.Expr, key: sp.Expr) -> sp.Expr:
    """w at (query, key), its own summation indices renamed where they would capture one."""
    return Named("w", weights.weight, (weights.query, weights.key)).written_at((query, key))


def weight_at(weights: Weights, query: sp.Expr, key: sp.Expr) -> sp.Expr:
    """P's definition w / Z at (query, key), Z as its placeholder."""
    return _weight(weights, query, key) / weights.normaliser.at((query,))


def weight_bar_at(weights: Weights, query: sp.Expr, key: sp.Expr) -> sp.Expr:
    """P-bar's definition: the sum over the output's last axis of y-bar times g, at (query, key)."""
    avoid = {str(i.label) for i in (query, key) if isinstance(i, sp.Idx)}
    e = fresh_index(weights.out, avoid) if str(weights.out.label) in avoid else weights.out
    value = substitute_indices(weights.value, (weights.key, weights.out), (key, e))
    summand = sp.IndexedBase(COTANGENT)[query, e] * value
    return sp.Sum(summand, (e, e.lower, e.upper))


def through_weights(expr: sp.Expr, weights: Weights) -> sp.Expr | None:
    """``expr`` (a compact form, Z as its placeholder) through P and P-bar; None where an
    exponential is left that is not a weight."""
    replaced = {}
    base = sp.IndexedBase(WEIGHT, positive=True)
    for power in expr.atoms(sp.exp):
        free = free_indices(power)
        for query in [i for i in free if dim_of(i) == dim_of(weights.query)]:
            for key in [i for i in free if dim_of(i) == dim_of(weights.key)]:
                if canonical_dummies(_weight(weights, query, key)) == canonical_dummies(power):
                    replaced[power] = weights.normaliser.at((query,)) * base[query, key]
    if set(replaced) != expr.atoms(sp.exp):
        return None
    written = tidy(expr.xreplace(replaced))
    return tidy(_name_bars(_gathered(written), weights))


def _gathered(expr: sp.Expr) -> sp.Expr:
    """Each sum whose summand is a product holding a sum, as one sum over both (inner limits first)."""
    if not expr.args or not expr.has(sp.Sum):
        return expr
    expr = expr.func(*[_gathered(arg) for arg in expr.args]) if not isinstance(expr, sp.Sum) else \
        sp.Sum(_gathered(expr.function), *expr.limits)
    if not isinstance(expr, sp.Sum):
        return expr
    factors = sp.Mul.make_args(expr.function)
    inner = [f for f in factors if isinstance(f, sp.Sum)]
    if len(inner) != 1:
        return expr
    rest = sp.Mul(*[f for f in factors if f is not inner[0]])
    body, limits = inner[0].function, list(inner[0].limits)
    taken = index_names(rest) | {str(v.label) for v, _, _ in expr.limits}
    for position, (var, lower, upper) in enumerate(limits):
        if str(var.label) in taken:  # the inner index renamed away from the outer product's
            new = fresh_index(var, taken | index_names(body))
            body, limits[position] = substitute_index(body, var, new), (new, lower, upper)
            taken.add(str(new.label))
    return sp.Sum(rest * body, *limits, *expr.limits)


def _name_bars(expr: sp.Expr, weights: Weights) -> sp.Expr:
    """Each sum over the output's last axis of y-bar_ae g_be (with other factors) as P-bar_ab."""
    if not expr.args or not expr.has(sp.Sum):
        return expr
    if not isinstance(expr, sp.Sum):
        return expr.func(*[_name_bars(arg, weights) for arg in expr.args])
    body, limits = _name_bars(expr.function, weights), list(expr.limits)
    bar = sp.IndexedBase(WEIGHT_BAR, real=True)
    for limit in list(limits):
        var = limit[0]
        if dim_of(var) != dim_of(weights.out):
            continue
        factors = sp.Mul.make_args(body)
        holding = [f for f in factors if var in free_indices(f)]
        cotangents = [f for f in holding if isinstance(f, sp.Indexed) and str(f.base.label) == COTANGENT]
        if len(holding) != 2 or len(cotangents) != 1 or cotangents[0].indices[1] != var:
            continue
        query = cotangents[0].indices[0]
        other = next(f for f in holding if f is not cotangents[0])
        keys = [i for i in free_indices(other) if i != var and dim_of(i) == dim_of(weights.key)]
        if len(keys) != 1 or other != substitute_indices(weights.value, (weights.key, weights.out), (keys[0], var)):
            continue
        body = sp.Mul(*[f for f in factors if f not in holding]) * bar[query, keys[0]]
        limits.remove(limit)
    return sp.Sum(body, *limits) if limits else body
