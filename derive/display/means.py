"""Means as a paper writes them: (1/n) sum_i f_i shown as <f_i>_i, the mean of f over i.

A result's row sums almost always come divided by the count they run over (layernorm's
(1/n) sum_i ybar_i gamma_i xhat_i, batchnorm's 1/(N S) over the batch and spatial axes).  Shown with
the summation signs and their limits, each takes a line's height and a third of a column's width;
``with_means`` rewrites every such pair in a displayed expression into a ``Mean``, which the LaTeX
printer sets as ``\\langle f \\rangle_{i}``.  Display only: the equation a document checks is the one
before the rewrite; a sum not divided by its count (batchnorm's gamma-bar), or over a summand with
sums or exponentials in it (which a line may have to break inside), stays a sum.
"""

from __future__ import annotations

import sympy as sp


class Mean(sp.Expr):
    """The mean of ``args[0]`` over the limits ``args[1:]`` (each ``(index, lower, upper)``), as displayed."""

    is_commutative = True

    @property
    def function(self) -> sp.Expr:
        return self.args[0]

    @property
    def limits(self) -> tuple[sp.Tuple, ...]:
        return tuple(self.args[1:])


def count(limits) -> sp.Expr:
    """How many terms a sum over ``limits`` has."""
    return sp.Mul(*[sp.expand(upper - lower + 1) for _, lower, upper in limits])


def with_means(expr: sp.Expr, sizes: set[sp.Symbol]) -> sp.Expr:
    """``expr`` with every sum that a product divides by its count (a product of ``sizes``) shown as a Mean."""
    if not isinstance(expr, sp.Basic) or not expr.has(sp.Sum):
        return expr
    shown = expr.replace(lambda e: e.is_Mul and any(isinstance(f, (sp.Sum, sp.Add)) for f in e.args),
                         lambda e: _distributed(e, sizes))
    shown = shown.replace(lambda e: e.is_Mul and any(isinstance(f, sp.Sum) for f in e.args),
                          lambda e: _meaned(e, sizes))
    return shown if shown.has(Mean) else expr  # no mean: the expression as given, not a rebuilt copy


def _distributed(product: sp.Expr, sizes: set[sp.Symbol]) -> sp.Expr:
    """(1/n)(sum a - c sum b) as (1/n) sum a - (c/n) sum b, where every term then becomes a mean."""
    counts = [f for f in product.args if f.as_base_exp()[0] in sizes and f.as_base_exp()[1].is_negative]
    brackets = [f for f in product.args if isinstance(f, sp.Add)]
    if not counts or len(brackets) != 1:
        return product
    scale = sp.Mul(*counts)
    terms = [_meaned(sp.Mul(scale, *sp.Mul.make_args(term)), sizes) for term in brackets[0].args]
    if any(t.has(sp.Sum) or not t.has(Mean) for t in terms):
        return product
    rest = [f for f in product.args if f not in counts and f is not brackets[0]]
    return sp.Mul(*rest, sp.Add(*terms))


def _meaned(product: sp.Expr, sizes: set[sp.Symbol]) -> sp.Expr:
    """One product's sums divided by their counts as Means, as far as its sizes' powers allow."""
    powers: dict[sp.Expr, sp.Expr] = {}
    others: list[sp.Expr] = []
    sums: list[sp.Sum] = []
    for factor in product.args:
        if isinstance(factor, sp.Sum):
            sums.append(factor)
            continue
        base, exponent = factor.as_base_exp()
        if base in sizes and exponent.is_Integer and exponent < 0:
            powers[base] = powers.get(base, sp.S.Zero) + exponent
        else:
            others.append(factor)
    means: list[sp.Expr] = []
    for term in sums:
        needed = count(term.limits).as_powers_dict()
        short = not term.function.has(sp.Sum, sp.exp)  # a mean is set on one line: a short summand only
        if short and needed and all(b in sizes and powers.get(b, 0) <= -k for b, k in needed.items()):
            for base, k in needed.items():
                powers[base] += k
            means.append(Mean(term.function, *term.limits))
        else:
            means.append(term)
    return sp.Mul(*others, *[base**exponent for base, exponent in powers.items()], *means)


def without_means(expr: sp.Expr) -> sp.Expr:
    """The inverse of ``with_means``: every Mean written as its sum over its count again."""
    return expr.replace(lambda e: isinstance(e, Mean), lambda e: sp.Sum(e.function, *e.limits) / count(e.limits))


def stands_for(shown: sp.Expr, expr: sp.Expr) -> bool:
    """Is ``shown`` (``with_means(expr)``) ``expr`` again once its means are sums over their counts?
    Both are rebuilt first, so a product kept unevaluated upstream compares by value, not by the
    order of its factors."""
    return sp.expand(_evaluated(without_means(shown)) - _evaluated(expr)) == 0


def _evaluated(expr: sp.Expr) -> sp.Expr:
    if not expr.args or isinstance(expr, (sp.Indexed, sp.IndexedBase, sp.Idx)):
        return expr
    return expr.func(*[_evaluated(arg) for arg in expr.args])
