"""Readable forms of derived expressions: named intermediates (mu, sigma, r) and tidy indices.

A model's ``where`` clause names quantities such as the mean or the rms; ``name_intermediates``
writes each back in by name (a root's radicand becomes the name squared, so r^3 reads as r^3).
"""

from __future__ import annotations

import sympy as sp

from ..calculus.indices import canonical_dummies, readable_dummies
from ..model import OperatorModel


def intermediate_symbols(model: OperatorModel) -> list[tuple[sp.Symbol, sp.Expr]]:
    """(symbol, canonical definition) for each named quantity, each written with the earlier ones."""
    named: list[tuple[sp.Symbol, sp.Expr]] = []
    for name, definition in model.where:
        symbol = sp.Symbol(name, positive=True)
        named.append((symbol, name_intermediates(canonical_dummies(definition), named)))
    return named


def name_intermediates(expr: sp.Expr, named: list[tuple[sp.Symbol, sp.Expr]]) -> sp.Expr:
    """Replace each defined quantity in ``expr`` by its symbol."""
    expr = canonical_dummies(expr)
    for symbol, definition in named:
        if isinstance(definition, sp.Pow) and definition.exp == sp.S.Half:
            expr = expr.subs(definition.base, symbol ** 2)
        expr = expr.subs(definition, symbol)
    return expr


def readable(expr: sp.Expr, model: OperatorModel) -> sp.Expr:
    """``expr`` with the model's named quantities written in and distinct names for nested sums."""
    if model.where:
        expr = name_intermediates(expr, intermediate_symbols(model))
    return readable_dummies(expr)
