"""Named intermediates (mu, sigma, r, S) written into displayed expressions, with their indices.

A model's ``where`` quantity may depend on a free index (batch norm's per-channel mean mu_j,
attention's per-query denominator Z_i); once differentiated, the same quantity appears with
other indices (mu_p in the gradient of x[k, p, q]).  ``Intermediates.name`` finds each quantity
at every index of the right axis and writes it as mu_p; a root's radicand becomes the square, and
a bare sum a mean is made of its multiple (sum_j x_j = n mu) outside open derivatives.
``Intermediates.write_out`` is the inverse, so every displayed form can be checked against its
exact expression.  ``displayed`` is an expression as every display shows it (the documents,
``derive.readable``, ``derive show``, the notebooks).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import sympy as sp

from ..calculus.differentiate import Partial
from ..calculus.indices import canonical_dummies, free_indices, index_names, readable_dummies, substitute_index
from ..model import OperatorModel, dim_of
from .notation import DisplayPartial

_OPEN = (Partial, DisplayPartial)
"""Open derivatives: a step that takes one shows what it differentiates as it is, so its rule reads."""


@dataclass(frozen=True)
class Intermediate:
    name: str
    indices: tuple[sp.Idx, ...]
    """The free indices of the definition (empty: the quantity is one scalar)."""
    definition: sp.Expr
    """Canonical, written out (no names)."""

    def at(self, indices: tuple[sp.Expr, ...]) -> sp.Expr:
        """The symbol for this quantity at ``indices`` (mu, or mu[p])."""
        if not self.indices:
            return sp.Symbol(self.name, positive=True)
        return sp.IndexedBase(self.name, positive=True)[tuple(indices)]

    def defined_at(self, indices: tuple[sp.Expr, ...]) -> sp.Expr:
        expr = self.definition
        for old, new in zip(self.indices, indices):
            expr = substitute_index(expr, old, new)
        return canonical_dummies(expr)

    @property
    def symbol(self) -> sp.Expr:
        return self.at(self.indices)


class Intermediates:
    """The model's named quantities, innermost first."""

    def __init__(self, model: OperatorModel) -> None:
        self.all: list[Intermediate] = []
        for name, definition in model.where:
            definition = canonical_dummies(definition)
            indices = tuple(sorted(free_indices(definition), key=lambda i: str(i.label)))
            self.all.append(Intermediate(name, indices, definition))

    def definitions(self) -> list[tuple[sp.Expr, sp.Expr]]:
        """(symbol, definition written with the earlier names) for each quantity."""
        return [(q.symbol, self.name(q.definition, upto=position)) for position, q in enumerate(self.all)]

    def name(self, expr: sp.Expr, upto: int | None = None) -> sp.Expr:
        """``expr`` with every quantity (the first ``upto`` of them) written as its symbol."""
        expr = canonical_dummies(expr)
        for position, quantity in enumerate(self.all[:upto]):
            for indices in self._placements(quantity, expr):
                pattern = self.name(quantity.defined_at(indices), upto=position)
                symbol = quantity.at(indices)
                if isinstance(pattern, sp.Pow) and pattern.exp == sp.S.Half:
                    expr = replace_part(expr, pattern.base, symbol ** 2)
                expr = replace_part(expr, pattern, symbol)
                factor, core = pattern.as_independent(sp.Sum, as_Add=False)
                if isinstance(core, sp.Sum) and factor != 1:  # mu = Sum(x)/n: a bare Sum(x) is n*mu
                    expr = replace_part(expr, core, symbol / factor, skip=_OPEN)  # open derivatives: as taken
        return expr

    def write_out(self, expr: sp.Expr) -> sp.Expr:
        """The inverse of ``name``: every symbol replaced by its definition, written out."""
        for quantity in reversed(self.all):
            if quantity.indices:
                expr = expr.replace(lambda e, q=quantity: isinstance(e, sp.Indexed) and e.base.name == q.name,
                                    lambda e, q=quantity: q.defined_at(tuple(e.indices)))
            else:
                expr = expr.xreplace({quantity.at(()): quantity.definition})
        return expr

    @staticmethod
    def _placements(quantity: Intermediate, expr: sp.Expr) -> list[tuple[sp.Expr, ...]]:
        """Every way to put indices of ``expr`` on the axes of the quantity's free indices."""
        if not quantity.indices:
            return [()]
        present = sorted(expr.atoms(sp.Idx), key=lambda i: str(i.label))
        choices = [[i for i in present if dim_of(i) == dim_of(own)] or [own] for own in quantity.indices]
        return list(itertools.product(*choices))


def replace_part(expr: sp.Expr, part: sp.Expr, value: sp.Expr, skip: tuple[type, ...] = ()) -> sp.Expr:
    """``expr`` with ``part`` replaced by ``value`` wherever it occurs, also as some of the factors
    of a product or some of the terms of a sum, and also where it holds an index a sum binds
    (which ``subs`` refuses to touch); not inside the types ``skip``."""
    if expr == part:
        return value
    if not expr.args or isinstance(expr, (sp.Indexed, sp.Idx, *skip)):
        return expr
    expr = expr.func(*[replace_part(arg, part, value, skip) for arg in expr.args])
    if isinstance(expr, sp.Mul) and isinstance(part, sp.Mul):
        return _replace_in(expr, part, value, sp.Mul)
    if isinstance(expr, sp.Add) and isinstance(part, sp.Add):
        return _replace_in(expr, part, value, sp.Add)
    return expr


def _replace_in(expr: sp.Expr, part: sp.Expr, value: sp.Expr, kind: type) -> sp.Expr:
    """A product (sum) holding the factors (terms) of ``part``, and a number times them, rewritten."""
    if kind is sp.Mul:
        (coefficient, own), (scale, wanted) = expr.as_coeff_mul(), part.as_coeff_mul()
    else:
        (coefficient, own), (scale, wanted) = expr.as_coeff_add(), part.as_coeff_add()
    remaining = list(own)
    for item in wanted:
        if item not in remaining:
            return expr
        remaining.remove(item)
    if kind is sp.Mul:
        return coefficient / scale * value * sp.Mul(*remaining)
    if coefficient != scale:
        return expr
    return value + sp.Add(*remaining)


def preferred_indices(model: OperatorModel) -> dict[sp.Expr, list[str]]:
    """The model's index names over each axis (the output's first): what a summation index is called."""
    preferred: dict[sp.Expr, list[str]] = {}
    others = sorted(model.output.atoms(sp.Idx) - set(model.output_indices), key=lambda i: str(i.label))
    for idx in (*model.output_indices, *others):
        preferred.setdefault(dim_of(idx), []).append(str(idx.label))
    return preferred


def displayed(expr: sp.Expr, names: Intermediates, preferred: dict[sp.Expr, list[str]]) -> sp.Expr:
    """``expr`` as displayed: open derivatives as DisplayPartial, named quantities written in,
    summation indices named like the model's indices over the same axis where that is free."""
    marked = expr.replace(lambda e: isinstance(e, Partial), lambda e: DisplayPartial(*e.args))
    named = readable_dummies(names.name(marked))
    return _prefer_names(named, preferred, {str(i.label) for i in free_indices(named)})


def _prefer_names(expr: sp.Expr, preferred: dict[sp.Expr, list[str]], taken: set[str]) -> sp.Expr:
    """Rename each summation index to the first model index name over its axis that is free here."""
    if not expr.args or not expr.has(sp.Sum):
        return expr
    if not isinstance(expr, sp.Sum):
        return expr.func(*[_prefer_names(arg, preferred, taken) for arg in expr.args])
    body, limits, inner = expr.function, [], set(taken)
    for var, lower, upper in expr.limits:
        used = index_names(body) - {str(var.label)}
        name = next((c for c in preferred.get(dim_of(var), []) if c not in inner | used), None)
        if name is not None and name != str(var.label):
            new = sp.Idx(name, (var.lower, var.upper))
            body, var = substitute_index(body, var, new), new
        inner.add(str(var.label))
        limits.append((var, lower, upper))
    return sp.Sum(_prefer_names(body, preferred, inner), *limits)
