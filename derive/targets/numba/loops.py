"""Lower the shared schedule to loops: which axes the threads split, which reductions each unit makes.

The schedule (``derive.schedule``: stable forms, CSE) gives a kernel function as temporaries and
results over the core axes.  A compiled loop needs them at another depth: every elementwise
temporary is put back into its users (recomputing it costs less than a pass over memory), every
reduction (a ``Sum`` or ``max_over``) becomes a value of its own, computed before its users.

The *unit* axes are the core axes no reduction binds: the kernel runs one unit per batch row and
unit-axis position (a row, a channel, a group), in parallel; the other, *inner*, axes are looped
over inside a unit.  A result that sums over unit axes at its top (a parameter's gradient summed
over the batch) is added up per thread and summed once afterwards.  Reductions whose value varies
along inner axes are kept in a per-unit scratch array over those axes.  A costly per-entry value
that a reduction pass computes and the result pass needs again (softmax's ``exp(x - max)``) is kept
from the one for the other in a scratch array over the inner axes (``kept``), instead of computed
twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from ...calculus.indices import free_indices
from ...errors import LoweringError
from ...model import dim_of
from ...model.functions import max_over


@dataclass(frozen=True)
class Term:
    """One summand of a result, computed when its flag (a kernel argument) is true (always if None)."""

    expr: sp.Expr
    guard: str | None = None


@dataclass(frozen=True)
class Result:
    """An output array of the loops: its name, its terms, the core axes it spans (in frame order)."""

    name: str
    terms: tuple[Term, ...]
    dims: tuple[sp.Expr, ...]
    accumulate: bool = False
    """True when units other than its own add into one entry (it spans not every unit axis)."""
    adds: bool = False
    """Written with ``+=`` into a zeroed array (accumulating, or a parameter's gradient, which may be
    summed over the rows); else with ``=``, one row per row."""
    guard: str | None = None
    """The flag it is computed under (a gradient: wanted); its terms may have flags of their own."""


@dataclass
class Reduction:
    """A reduction of one unit: ``sum`` or ``max`` of ``body`` over ``bound``, at each ``free`` position."""

    name: str
    kind: str
    body: sp.Expr
    mask: sp.Expr | None
    bound: tuple[sp.Idx, ...]
    free: tuple[sp.Idx, ...]
    level: int
    guards: set = field(default_factory=set)
    """The flags of the results that need it (None among them: needed unconditionally)."""

    @property
    def guard(self) -> str | None:
        if None in self.guards or not self.guards:
            return None
        return " or ".join(sorted(self.guards))


@dataclass(frozen=True)
class LoopPlan:
    frame: tuple[sp.Expr, ...]
    units: tuple[sp.Expr, ...]
    inner: tuple[sp.Expr, ...]
    reductions: tuple[Reduction, ...]
    results: tuple[Result, ...]


def inline(prelude, own: dict, results: dict) -> dict[str, sp.Expr]:
    """The results with every scheduled temporary put back (``t3[n_]`` -> its definition)."""
    defined: dict[str, sp.Expr] = {}

    def put_back(expr: sp.Expr) -> sp.Expr:
        expr = expr.replace(lambda e: isinstance(e, sp.Indexed) and str(e.base) in defined,
                            lambda e: defined[str(e.base)])
        return expr.xreplace({sp.Symbol(name): value for name, value in defined.items()})

    for symbol, definition in (*prelude, *(step for steps in own.values() for step in steps)):
        defined[str(symbol)] = put_back(definition)
    return {name: put_back(expr) for name, expr in results.items()}


def plan(results: list[tuple[str, list[Term], tuple[sp.Expr, ...]]], frame: tuple[sp.Expr, ...]) -> LoopPlan:
    """Choose unit and inner axes, distribute top-level sums over unit axes, hoist the reductions."""
    bound: set = set()
    peeled = []
    for _name, terms, dims in results:
        for term in terms:
            top = _peel(term.expr)
            peeled.append(top)
            if top is None:
                bound |= _bound_dims(term.expr)
                continue
            common = set.intersection(*({dim_of(limit[0]) for limit in s.limits} for _, s in top))
            for coefficient, total in top:
                bound |= _bound_dims(coefficient) | _bound_dims(total.function)
                bound |= {dim_of(limit[0]) for limit in total.limits} - (common - set(dims))
    units = [d for d in frame if d not in bound]
    if len(units) == len(frame) and frame:
        units.pop()  # nothing to loop over inside a unit: keep the last (contiguous) axis inner
    inner = tuple(d for d in frame if d not in units)
    table: dict = {}
    reductions: list[Reduction] = []
    laid: list[Result] = []
    tops = iter(peeled)
    for name, terms, dims in results:
        new_terms = []
        for term in terms:
            expr = _distribute(term.expr, next(tops), units)
            extra = {dim_of(i) for i in free_indices(expr)} - set(dims) - set(units)  # distributed: added up
            if extra:
                raise LoweringError(f"{name} = {expr} varies along {sorted(map(str, extra))}, not axes of {name}")
            new_terms.append(Term(_hoist(expr, inner, frame, table, reductions), term.guard))
        laid.append(Result(name, tuple(new_terms), tuple(d for d in frame if d in dims),
                           accumulate=not set(units) <= set(dims)))
    _mark_guards(laid, reductions)
    return LoopPlan(frame, tuple(units), inner, tuple(reductions), tuple(laid))


def _peel(expr: sp.Expr) -> list[tuple[sp.Expr, sp.Sum]] | None:
    """``expr`` as terms ``c * Sum(...)`` (c free of the sum's indices), or None if it is not."""
    terms = []
    for term in sp.Add.make_args(expr):
        factors = sp.Mul.make_args(term)
        sums = [f for f in factors if isinstance(f, sp.Sum)]
        if len(sums) != 1:
            return None
        coefficient = sp.Mul(*(f for f in factors if f is not sums[0]))
        if free_indices(coefficient) & {limit[0] for limit in sums[0].limits}:
            return None
        terms.append((coefficient, sums[0]))
    return terms


def _distribute(expr: sp.Expr, top, units) -> sp.Expr:
    """Each ``c * Sum(body, limits)`` with the limits over unit axes dropped (those units add up)."""
    if top is None:
        return expr
    terms = []
    for coefficient, total in top:
        kept = tuple(limit for limit in total.limits if dim_of(limit[0]) not in units)
        terms.append(coefficient * (sp.Sum(total.function, *kept) if kept else total.function))
    return sp.Add(*terms)


def _bound_dims(expr: sp.Expr) -> set:
    found = set()
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Sum):
            found |= {dim_of(limit[0]) for limit in node.limits}
        elif isinstance(node, max_over):
            found.add(dim_of(node.args[1]))
    return found


def _hoist(expr: sp.Expr, inner, frame, table: dict, reductions: list[Reduction]) -> sp.Expr:
    """``expr`` with every reduction replaced by its value (a scalar, or a scratch array entry)."""
    levels = {r.name: r.level for r in reductions}

    def visit(node: sp.Expr) -> sp.Expr:
        if isinstance(node, sp.Sum):
            bound = tuple(limit[0] for limit in node.limits)
            outside, inside = _constant_factors(visit(node.function), bound)
            return outside * reduce("sum", inside, bound, None)
        if isinstance(node, max_over):
            body, var, *mask = node.args
            mask = visit(mask[0]) if mask and mask[0] != 1 else None
            return reduce("max", visit(body), (var,), mask)
        if not node.args or isinstance(node, (sp.Indexed, sp.Idx)):
            return node
        return node.func(*(visit(arg) for arg in node.args))

    def reduce(kind: str, body: sp.Expr, bound: tuple, mask) -> sp.Expr:
        key = (kind, body, bound, mask)
        if key not in table:
            order = {d: p for p, d in enumerate(frame)}
            present = free_indices(body) | (free_indices(mask) if mask is not None else set())
            free = tuple(sorted((i for i in present - set(bound) if dim_of(i) in inner),
                                key=lambda i: order[dim_of(i)]))
            used = [levels[str(s)] for s in names_in(body, mask) if str(s) in levels]
            reduction = Reduction(f"s{len(reductions)}", kind, body, mask, bound, free,
                                  1 + max(used) if used else 0)
            reductions.append(reduction)
            levels[reduction.name] = reduction.level
            table[key] = sp.IndexedBase(reduction.name)[free] if free else sp.Symbol(reduction.name)
        return table[key]

    return visit(expr)


def _constant_factors(body: sp.Expr, bound: tuple) -> tuple[sp.Expr, sp.Expr]:
    """``body`` as (factors free of the ``bound`` indices, the rest): a per-unit factor (a variance's
    ``1/sqrt``) taken out of a sum lets the sum be made in an earlier pass, beside the ones it
    does not depend on."""
    factors = sp.Mul.make_args(body)
    outside = [f for f in factors if not free_indices(f) & set(bound)]
    if len(outside) == len(factors):
        return sp.S.One, body
    return sp.Mul(*outside), sp.Mul(*(f for f in factors if f not in outside))


def names_in(*exprs) -> set:
    """The names of the symbols and arrays ``exprs`` read."""
    found = set()
    for expr in exprs:
        if expr is not None:
            found |= {str(s) for s in expr.atoms(sp.Symbol)} | {str(b.label) for b in expr.atoms(sp.IndexedBase)}
    return found


def _mark_guards(results: list[Result], reductions: list[Reduction]) -> None:
    """Give each reduction the flags of the results that need it, directly or through another."""
    by_name = {r.name: r for r in reductions}
    for result in results:
        for term in result.terms:
            for name in names_in(term.expr) & set(by_name):
                by_name[name].guards.add(term.guard)
    for reduction in reversed(reductions):
        for name in names_in(reduction.body, reduction.mask) & set(by_name):
            by_name[name].guards |= reduction.guards


@dataclass(frozen=True)
class Kept:
    """A per-entry value stored by the reduction pass over ``indices`` (the group ``group`` of
    reductions) in the scratch array ``name``, and read back by the result pass."""

    name: str
    expr: sp.Expr
    indices: tuple[sp.Idx, ...]
    group: tuple


def kept(plan: LoopPlan, groups: dict, inner: tuple, indices: list[sp.Idx]) -> list[Kept]:
    """The costly values (a function's call, a fractional power) of the results over ``inner`` that a
    reduction pass over all of ``indices`` computes as well, under flags that cover those of every
    term that reads the value (the pass ran whenever such a term is computed).  Outermost first; none
    inside another."""
    terms = [(t.expr, t.guard or r.guard) for r in plan.results if tuple(d for d in r.dims if d in inner) == inner
             for t in r.terms]
    passes = [(key, group) for key, group in sorted(groups.items(), key=lambda item: -item[0][0])
              if set(key[1]) == set(indices)]
    found: list[Kept] = []
    for expr, _ in terms:
        for node in sp.preorder_traversal(expr):
            if not _costly(node) or not node.has(*indices) or any(k.expr.has(node) for k in found):
                continue
            readers = {flag for other, flag in terms if other.has(node)}
            for key, group in passes:
                flags = {g for r in group for g in r.guards}
                if (None in flags or readers <= flags) and any(r.body.has(node) for r in group):
                    found.append(Kept(f"k{len(found)}_", node, tuple(indices), key))
                    break
    return found


def _costly(node: sp.Basic) -> bool:
    if isinstance(node, sp.Pow):
        return not node.exp.is_Integer
    return isinstance(node, sp.Function) and not isinstance(node, (sp.KroneckerDelta, max_over)) and bool(node.args)
