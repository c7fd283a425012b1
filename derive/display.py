"""Readable forms of derived expressions: named intermediates (mu, sigma, r) and tidy indices.

A model's ``where`` clause names quantities such as the mean or the rms; ``name_intermediates``
writes each back in by name (a root's radicand becomes the name squared, so r^3 reads as r^3).
"""

from __future__ import annotations

import sympy as sp

from .calculus.indices import canonical_dummies, free_indices, readable_dummies, substitute_index
from .model import OperatorModel


def intermediate_symbols(model: OperatorModel) -> list[tuple[sp.Symbol, sp.Expr]]:
    """(symbol, canonical definition) for each named quantity, each written with the earlier ones."""
    named: list[tuple[sp.Symbol, sp.Expr]] = []
    for name, definition in model.where:
        symbol = sp.Symbol(name, positive=True)
        named.append((symbol, name_intermediates(canonical_dummies(definition), named)))
    return named


def name_intermediates(expr: sp.Expr, named: list[tuple[sp.Symbol, sp.Expr]]) -> sp.Expr:
    """Replace each defined quantity in ``expr`` by its symbol.

    A quantity per channel (batchnorm's mean over ``x[j, c, t]``) may appear in ``expr`` with its
    index renamed (``x[j, p, t]`` in the gradient by ``x[k, p, q]``); the one renamed form found is
    named too (when several are, only the original, so one symbol never stands for two values).
    """
    expr = canonical_dummies(expr)
    for symbol, definition in named:
        found = [form for form in _renamed_forms(definition, expr) if _occurs(form, expr)]
        form = found[0] if len(found) == 1 else definition
        if isinstance(form, sp.Pow) and form.exp == sp.S.Half:
            expr = expr.subs(form.base, symbol ** 2)
        expr = expr.subs(form, symbol)
        factor, core = form.as_independent(sp.Sum, as_Add=False)
        if isinstance(core, sp.Sum) and factor != 1:  # mu = Sum(x)/n: a bare Sum(x) is n*mu
            expr = expr.subs(core, symbol / factor)
    return expr


def _renamed_forms(definition: sp.Expr, expr: sp.Expr) -> list[sp.Expr]:
    """``definition``, then with its free indices renamed to other indices of ``expr`` over the same range."""
    forms = [definition]
    present = sorted(expr.atoms(sp.Idx), key=str)
    for index in sorted(free_indices(definition), key=str):
        others = [o for o in present if o != index and (o.lower, o.upper) == (index.lower, index.upper)]
        forms += [canonical_dummies(substitute_index(form, index, other)) for form in forms for other in others]
    return forms


def _occurs(form: sp.Expr, expr: sp.Expr) -> bool:
    root = isinstance(form, sp.Pow) and form.exp == sp.S.Half
    return expr.has(form) or (root and expr.has(form.base))


def readable(expr: sp.Expr, model: OperatorModel) -> sp.Expr:
    """``expr`` with the model's named quantities written in and distinct names for nested sums."""
    if model.where:
        expr = name_intermediates(expr, intermediate_symbols(model))
    return readable_dummies(expr)


def compact_readable(expr: sp.Expr, model: OperatorModel) -> sp.Expr:
    """A compact form (``calculus/compact.py``) for reading: each named quantity by its bare name
    (mu, not mu[p]: its indices are those of the entry it belongs to), distinct nested sum names."""
    names = {name for name, _ in model.where}
    expr = expr.replace(lambda e: isinstance(e, sp.Indexed) and str(e.base.label) in names,
                        lambda e: sp.Symbol(str(e.base.label), **e.base.assumptions0))
    return readable_dummies(expr)

