"""Compact forms: a derived VJP/JVP written through the model's named quantities, checked.

A model names intermediates (``where``: the mean mu, sigma, the rms r, a softmax's sum S).  Here
each occurrence of one in a derived expression (its free indices renamed, as batchnorm's mean for
channel p) becomes a placeholder ``mu[p]``, and the input is then written through a quantity the
output is built from: the normalised input x_hat (the factors of the output that depend on the
input entry and named quantities only, (x - mu)/sigma or x/r) or the output y itself.  The input
entry is solved for (``sympy.solve``: x = mu + sigma x_hat, x = log(S y)) and substituted back,
the result expanded, its sums split and constants pulled out (``rules.simplify``) and common
factors collected.  The form with the fewest operations wins; it is kept only if, with every
placeholder written out again, it equals the raw contraction at random points (``compare``), so a
form that is not exact (an inverse with several branches) falls back to the raw one.

Written out again (``expand_named``), a compact form is centred: batchnorm's sum of dy (x - mu),
not sum(dy x) - mu sum(dy), which cancels catastrophically in float32 when |mu| >> sigma; the
kernels are printed from it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import sympy as sp

from .concrete import compare
from .indices import canonical_dummies, free_indices, fresh_index, index_names, substitute_index
from .rules import bottom_up, pull_factors_out_of_sum, simplify

HAT = "x_hat"
OUTPUT = "y"


@dataclass(frozen=True)
class Named:
    """A named quantity: its placeholder base, its definition and the definition's free indices."""

    name: str
    definition: sp.Expr
    """Written with the earlier named quantities as placeholders."""
    free: tuple[sp.Idx, ...]

    @property
    def base(self) -> sp.IndexedBase:
        positive = isinstance(self.definition, sp.Pow) and self.definition.exp == sp.S.Half
        return sp.IndexedBase(self.name, positive=True) if positive else sp.IndexedBase(self.name, real=True)

    def at(self, indices: tuple[sp.Expr, ...]) -> sp.Expr:
        return self.base[indices] if indices else sp.Symbol(self.name, **self.base.assumptions0)

    def written_at(self, indices: tuple[sp.Expr, ...]) -> sp.Expr:
        avoid = {str(i.label) for new in indices for i in free_indices(new)}
        expr = _rebind(self.definition, avoid)
        for old, new in zip(self.free, indices):
            expr = substitute_index(expr, old, new)
        return expr


def _rebind(expr: sp.Expr, avoid: set[str]) -> sp.Expr:
    """``expr`` with every summation variable named in ``avoid`` renamed (so nothing is captured)."""
    if not expr.args or not expr.has(sp.Sum):
        return expr
    if not isinstance(expr, sp.Sum):
        return expr.func(*[_rebind(arg, avoid) for arg in expr.args])
    body, limits = _rebind(expr.function, avoid), []
    for var, lower, upper in expr.limits:
        if str(var.label) in avoid:
            new = fresh_index(var, avoid | index_names(body) | {str(v.label) for v, _, _ in expr.limits})
            body = substitute_index(body, var, new)
            var = new
        limits.append((var, lower, upper))
    return sp.Sum(body, *limits)


def named_quantities(where: tuple[tuple[str, sp.Expr], ...]) -> list[Named]:
    """The model's ``where`` clause as placeholders, each written with the earlier ones."""
    named: list[Named] = []
    for name, definition in where:
        definition = name_in(canonical_dummies(definition), named)
        named.append(Named(name, definition, tuple(sorted(free_indices(definition), key=str))))
    return named


def _renamings(named: Named, node: sp.Expr) -> list[tuple[sp.Expr, ...]]:
    """The orders of ``node``'s free indices that match ``named``'s free ones range by range."""
    free = sorted(free_indices(node), key=str)
    if len(free) != len(named.free):
        return []
    return [order for order in itertools.permutations(free)
            if all((a.lower, a.upper) == (b.lower, b.upper) for a, b in zip(order, named.free))]


def _match(named: Named, node: sp.Expr) -> sp.Expr | None:
    """``node`` as the placeholder (or its power / multiple) when it is the definition renamed."""
    core_factor, core = named.definition.as_independent(sp.Sum, as_Add=False)
    root = isinstance(named.definition, sp.Pow) and named.definition.exp == sp.S.Half
    for order in _renamings(named, node):
        written = canonical_dummies(named.written_at(order))
        target = canonical_dummies(node)
        if target == written:
            return named.at(order)
        if root and target == written.base:
            return named.at(order) ** 2
        if isinstance(core, sp.Sum) and core_factor != 1 and target == canonical_dummies(core_factor ** -1 * written):
            return named.at(order) / core_factor
    return None


def name_in(expr: sp.Expr, named: list[Named]) -> sp.Expr:
    """Every occurrence of a named quantity in ``expr`` replaced by its placeholder."""
    for quantity in named:
        expr = _name_one(expr, quantity)
    return expr


def _name_one(expr: sp.Expr, quantity: Named) -> sp.Expr:
    found = _match(quantity, expr)
    if found is not None:
        return found
    if not expr.args or expr.is_Atom or isinstance(expr, (sp.Indexed, sp.Idx)):
        return expr
    if isinstance(expr, sp.Sum):
        return sp.Sum(_name_one(expr.function, quantity), *expr.limits)
    return expr.func(*[_name_one(arg, quantity) for arg in expr.args])


def expand_named(expr: sp.Expr, named: list[Named]) -> sp.Expr:
    """Every placeholder written out as its definition (the latest first, so nested ones unfold)."""
    for quantity in reversed(named):
        base = quantity.base
        expr = expr.replace(lambda e, base=base: isinstance(e, sp.Indexed) and e.base == base,
                            lambda e, quantity=quantity: quantity.written_at(tuple(e.indices)))
        if not quantity.free:
            expr = expr.xreplace({quantity.at(()): quantity.definition})
    return expr


def _solve_for(entry: sp.Indexed, through: sp.Expr, value: sp.Indexed) -> sp.Expr | None:
    """``entry`` solved from ``value = through`` (one solution), or None."""
    unknown = sp.Dummy("x", real=True)
    expr = through.xreplace({entry: unknown})
    if expr.has(entry.base) or through.count(entry) != 1:
        return None  # solved only where the entry occurs once (a chain of invertible steps)
    solution = _peel(expr, unknown, value)
    if solution is None or solution.has(unknown, sp.Piecewise, sp.nan, sp.zoo, sp.I):
        return None
    return solution


def _peel(expr: sp.Expr, unknown: sp.Dummy, value: sp.Expr) -> sp.Expr | None:
    """``unknown`` from ``expr == value`` by undoing one invertible step at a time (+, *, exp, log,
    a reciprocal): instant, and never a multi-valued inverse; None where a step is not one of these.
    (``sympy.solve`` does more, but can take minutes on a user's nested functions.)"""
    while expr != unknown:
        inner = [a for a in expr.args if a.has(unknown)]
        if len(inner) != 1:
            return None
        rest = [a for a in expr.args if not a.has(unknown)]
        if isinstance(expr, sp.Add):
            value = value - sp.Add(*rest)
        elif isinstance(expr, sp.Mul):
            value = value / sp.Mul(*rest)
        elif isinstance(expr, sp.exp):
            value = sp.log(value)
        elif isinstance(expr, sp.log):
            value = sp.exp(value)
        elif isinstance(expr, sp.Pow) and expr.exp == -1:
            value = 1 / value
        else:
            return None
        expr = inner[0]
    return value


def normalised_input(output: sp.Expr, entry: sp.Indexed, bases: set) -> sp.Expr | None:
    """The factors of the output's term holding ``entry`` that use only it and named quantities."""
    for term in sp.Add.make_args(output):
        if not term.has(entry):
            continue
        factors = [f for f in sp.Mul.make_args(term)
                   if {a.base for a in f.atoms(sp.Indexed)} <= bases | {entry.base}
                   and not (f.has(sp.Indexed) is False and f.is_number)]
        kept = sp.Mul(*factors)
        return kept if kept.has(entry) else None
    return None


@dataclass(frozen=True)
class Rewriter:
    """How one model's derived expressions are written through named quantities."""

    named: list[Named]
    substitutions: tuple[tuple[sp.IndexedBase, sp.Expr, sp.Expr, tuple], ...]
    """(input base, inverse at the output indices, definition of the new name, output indices)."""
    output: Named
    """The output itself as a named quantity, to name where it occurs (sigmoid(x) -> y)."""

    def through(self, expr: sp.Expr, position: int) -> sp.Expr | None:
        base, inverse, _, indices = self.substitutions[position]

        def at(entry: sp.Indexed) -> sp.Expr:
            value = inverse
            for old, new in zip(indices, entry.indices):
                value = substitute_index(value, old, new)
            return value

        rewritten = expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base == base, at)
        return None if rewritten.has(base) else tidy(rewritten)


def tidy(expr: sp.Expr) -> sp.Expr:
    """Expanded, sums split and constants pulled out, like terms combined, common factors out."""
    for _ in range(3):
        before = expr
        expr = simplify(sp.expand(expr))
        if expr == before:
            break
    return sp.factor_terms(sp.expand(expr))


def rewriter(output: sp.Expr, output_indices: tuple, where: tuple, inputs: list[sp.IndexedBase]) -> Rewriter:
    """The named quantities of a model and the substitutions its input entries allow."""
    named = named_quantities(where)
    bases = {q.base for q in named}
    entries = [e for e in output.atoms(sp.Indexed) if e.indices == tuple(output_indices) and e.base in inputs]
    named_output = name_in(canonical_dummies(output), named)
    measured = {b for q in named for b in expand_named(q.definition, named).atoms(sp.IndexedBase)}
    substitutions = []
    for entry in entries:
        hat = normalised_input(named_output, entry, bases) if entry.base in measured else None
        for name, through in ((HAT, hat), (OUTPUT, named_output)):
            if (name in {str(b.label) for b in inputs} or through is None or through == entry
                    or (name == HAT and through == named_output)):
                continue
            value = sp.IndexedBase(name, real=True)[tuple(output_indices)]
            inverse = _solve_for(entry, through, value)
            if inverse is None or {a.base for a in inverse.atoms(sp.Indexed)} - bases - {value.base}:
                continue
            substitutions.append((entry.base, inverse, through, tuple(output_indices)))
    return Rewriter(named, tuple(substitutions), Named(OUTPUT, named_output, tuple(output_indices)))


@dataclass(frozen=True)
class Compact:
    """A compact form (placeholders and x_hat / y in it) and the same written out for kernels."""

    expr: sp.Expr
    written: sp.Expr
    through: str | None
    """The name the input was written through (x_hat, y), or None (named quantities only)."""
    definition: sp.Expr | None = None
    """What that name stands for (``(x[i] - mu)/sigma``), the output for y."""


def weight(expr: sp.Expr) -> int:
    return sp.count_ops(expr, visual=False) + sum(1 for _ in sp.preorder_traversal(expr)) // 8


def compact(raw: sp.Expr, rewrite: Rewriter, dims: tuple[sp.Symbol, ...],
            sizes: tuple[int, ...] = (1, 2, 3)) -> Compact:
    """The lightest exact form of ``raw`` through the named quantities, or ``raw`` itself, checked
    equal to ``raw`` at random points with every axis at each of ``sizes``."""
    named = name_in(canonical_dummies(raw), rewrite.named)
    best = Compact(raw, raw, None)
    options = []
    attempts: list[tuple[Callable[[], sp.Expr | None], Any]] = [(lambda: tidy(named), None)]
    if not named.has(rewrite.output.base):  # an input named y: the output cannot take its name
        attempts.append((lambda: tidy(name_in(named, [rewrite.output])), "output"))
    attempts += [(partial(rewrite.through, named, position), (through, indices))
                 for position, (_, _, through, indices) in enumerate(rewrite.substitutions)]
    for attempt, source in attempts:
        try:
            value = attempt()
        except (TypeError, ValueError, NotImplementedError, RecursionError):
            continue  # a rewrite SymPy cannot carry out is one option less, never an error
        if value is not None:
            options.append((value, source))
    best_weight = weight(raw)
    for expr, source in sorted(options, key=lambda o: weight(o[0])):
        if weight(expr) > best_weight:
            break
        written = write_out(expr, rewrite, source)
        if compare(raw, written, dims, sizes=sizes, trials=2, entries=2, distinct=True) is None:
            if source is None:
                return Compact(expr, written, None)
            if source == "output":
                return Compact(expr, written, OUTPUT, rewrite.output.definition)
            return Compact(expr, written, str(_new_bases(expr, rewrite)[0].label), source[0])
    return best


def _new_bases(expr: sp.Expr, rewrite: Rewriter) -> list[sp.IndexedBase]:
    return [b for b in (sp.IndexedBase(HAT, real=True), sp.IndexedBase(OUTPUT, real=True))
            if any(a.base == b for a in expr.atoms(sp.Indexed))]


def write_out(expr: sp.Expr, rewrite: Rewriter, source: tuple | None) -> sp.Expr:
    """``expr`` with x_hat / y and every placeholder written out; constants pulled out of sums."""
    if source == "output":
        return write_out(expand_named(expr, [rewrite.output]), rewrite, None)
    if source is not None:
        through, indices = source
        for base in _new_bases(expr, rewrite):
            def at(entry: sp.Indexed, through=through, indices=indices) -> sp.Expr:
                value = through
                for old, new in zip(indices, entry.indices):
                    value = substitute_index(value, old, new)
                return value

            expr = expr.replace(lambda e, base=base: isinstance(e, sp.Indexed) and e.base == base, at)
    expr = expand_named(expr, rewrite.named)
    return bottom_up(pull_factors_out_of_sum)(expr)
