"""Lower a scheduled vjp into steps that update full-size arrays in place (``t *= s``, ``t -= u``).

A NumPy expression allocates a fresh full-size array for every operation; writing into an array
the kernel already owns is about twice as fast and holds less memory.  Only arrays computed from
the cotangent are written into: they already have the output's full shape and dtype, so any
operand spanning a subset of their axes fits.  Reductions inside a full-size expression are
computed first, into their own (per-row) temporaries, and a temporary whose last use is the
expression becomes its buffer.  Forward and jvp kernels keep plain ``=`` steps.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import sympy as sp

from ..calculus.indices import free_indices
from .schedule import Scheduled, as_array


@dataclass(frozen=True)
class Step:
    """``symbol op expr``: an assignment (``=``) or an in-place update (``+=``, ``-=``, ``*=``, ``/=``)."""

    symbol: sp.Symbol
    expr: sp.Expr
    op: str = "="


@dataclass(frozen=True)
class Lowered:
    prelude: tuple[Step, ...]
    own: dict[str, tuple[Step, ...]]
    results: dict[str, sp.Expr]


def plain(plan: Scheduled) -> Lowered:
    """The schedule as assignments only."""
    return Lowered(tuple(Step(s, e) for s, e in plan.prelude),
                   {name: tuple(Step(s, e) for s, e in own) for name, own in plan.own.items()}, plan.results)


def in_place(plan: Scheduled, seed: str) -> Lowered:
    """The schedule with full-size expressions that depend on ``seed`` updated in place."""
    return _Lowering(plan, seed).run()


def _names(expr: sp.Expr) -> set[str]:
    return {str(b.label) for b in expr.atoms(sp.IndexedBase)} | {str(s) for s in expr.atoms(sp.Symbol)}


def _mentions(expr: sp.Expr, name: str) -> int:
    """How often a temporary appears in ``expr`` (as ``t[i]`` or, if per-row, as ``t``)."""
    nodes = list(sp.preorder_traversal(expr))
    indexed = sum(1 for n in nodes if isinstance(n, sp.Indexed) and str(n.base.label) == name)
    return indexed or sum(1 for n in nodes if isinstance(n, sp.Symbol) and str(n) == name)


def _top_sums(expr: sp.Expr) -> list[sp.Sum]:
    """Reductions not nested in another reduction, in a fixed order."""
    found: list[sp.Sum] = []

    def walk(node: sp.Basic) -> None:
        if isinstance(node, sp.Sum):
            found.append(node)
        else:
            for arg in node.args:
                walk(arg)

    walk(expr)
    return list(dict.fromkeys(found))


def pull_common_factors(expr: sp.Expr) -> sp.Expr:
    """a*b*c + a*d -> a*(b*c + d): a common full-size factor is then multiplied in once."""
    if not isinstance(expr, sp.Add):
        return expr
    counts = [Counter(f for f in sp.Mul.make_args(t) if not f.is_Number) for t in expr.args]
    common = counts[0]
    for count in counts[1:]:
        common &= count
    if not common:
        return expr
    rest = [sp.Mul(*(Counter(sp.Mul.make_args(t)) - common).elements()) for t in expr.args]
    return sp.Mul(*common.elements(), sp.Add(*rest))


class _Lowering:
    def __init__(self, plan: Scheduled, seed: str) -> None:
        self.items: list[list] = [[None, s, e] for s, e in plan.prelude]
        for name, own in plan.own.items():
            self.items += [[name, s, e] for s, e in own] + [[name, None, plan.results[name]]]
        self.count = len(plan.prelude) + sum(len(own) for own in plan.own.values())
        self.seeded, self.block_of = {seed}, {}
        self.steps: dict[str | None, list[Step]] = {None: [], **{name: [] for name in plan.own}}
        self.results: dict[str, sp.Expr] = {}

    def run(self) -> Lowered:
        for position in range(len(self.items)):
            self.lower(position)
        return Lowered(tuple(self.steps[None]), {n: tuple(s) for n, s in self.steps.items() if n is not None},
                       self.results)

    # -- bookkeeping --------------------------------------------------------------------------
    def depends(self, expr: sp.Expr) -> bool:
        return bool(_names(expr) & self.seeded)

    def fresh(self) -> sp.Symbol:
        """The next temporary's name (taken once a step assigns it)."""
        return sp.Symbol(f"t{self.count}")

    def emit(self, block: str | None, step: Step) -> None:
        if step.symbol == self.fresh():
            self.count += 1
        self.steps[block].append(step)
        self.block_of.setdefault(str(step.symbol), block)
        if self.depends(step.expr):
            self.seeded.add(str(step.symbol))

    def reusable(self, term: sp.Expr, position: int, expr: sp.Expr, spans: set) -> sp.Symbol | None:
        """The temporary ``term`` if its buffer may become this expression's: last use, full span."""
        if not isinstance(term, sp.Indexed) or free_indices(term) != spans:
            return None
        name, block = str(term.base.label), self.items[position][0]
        if name not in self.seeded or name not in self.block_of or self.block_of[name] not in (None, block):
            return None
        later = any(_mentions(e, name) for _, _, e in self.items[position + 1:])
        returned = any(_mentions(r, name) for r in self.results.values())
        return sp.Symbol(name) if _mentions(expr, name) == 1 and not later and not returned else None

    # -- lowering -----------------------------------------------------------------------------
    def lower(self, position: int) -> None:
        block, symbol, expr = self.items[position]
        spans = free_indices(expr)
        if spans and isinstance(expr, (sp.Add, sp.Mul)) and self.depends(expr):
            for reduction in _top_sums(expr):
                name = self.fresh()
                self.emit(block, Step(name, reduction))
                expr = expr.xreplace({reduction: as_array(name, reduction)})
            expr = pull_common_factors(expr)
            self.items[position][2] = expr
            target = symbol if symbol is not None else self.fresh()
            buffer, steps = self.build(expr, position, target, spans) or (target, [Step(target, expr)])
        else:
            buffer, steps = symbol, ([Step(symbol, expr)] if symbol is not None else [])
        for step in steps:
            self.emit(block, step)
        if symbol is not None and buffer != symbol:
            renamed = {sp.Symbol(str(symbol)): buffer, sp.IndexedBase(str(symbol)): sp.IndexedBase(str(buffer))}
            for item in self.items[position + 1:]:
                item[2] = item[2].xreplace(renamed)
        if symbol is None:
            self.results[block] = as_array(buffer, expr) if steps else expr

    def build(self, expr: sp.Expr, position: int, target: sp.Symbol, spans: set):
        """(buffer, steps) leaving ``expr`` in a buffer this kernel owns, or None for one plain step."""
        owned = self.reusable(expr, position, self.items[position][2], spans)
        if owned is not None:
            return owned, []
        if isinstance(expr, sp.Add):
            return self.build_sum(expr, position, target, spans)
        if isinstance(expr, sp.Mul):
            return self.build_product(expr, position, target, spans)
        return None

    def build_sum(self, expr: sp.Add, position: int, target: sp.Symbol, spans: set):
        terms = list(expr.args)

        def owns(term: sp.Expr) -> bool:
            return any(self.reusable(f, position, self.items[position][2], spans) for f in sp.Mul.make_args(term))

        fits = [t for t in terms if free_indices(t) == spans and self.depends(t) and not isinstance(t, (sp.Indexed, sp.Symbol))]
        start = next((t for t in terms if owns(t)), None) or next(iter(fits), None)
        if start is None:
            return None
        terms.remove(start)
        buffer, steps = self.build(start, position, target, spans) or (target, [Step(target, start)])
        for term in terms:
            negative = term.could_extract_minus_sign()
            steps.append(Step(buffer, -term if negative else term, "-=" if negative else "+="))
        return buffer, steps

    def build_product(self, expr: sp.Mul, position: int, target: sp.Symbol, spans: set):
        factors = list(sp.Mul.make_args(expr))
        small = [f for f in factors if free_indices(f) != spans]
        large = [f for f in factors if free_indices(f) == spans]
        owned = next((f for f in large if self.reusable(f, position, self.items[position][2], spans)), None)
        sums = [f for f in large if isinstance(f, sp.Add) and self.depends(f)]
        if owned is not None:
            buffer, steps = sp.Symbol(str(owned.base.label)), []
            large.remove(owned)
        elif sums:
            large.remove(sums[0])
            buffer, steps = self.build(sums[0], position, target, spans) or (target, [Step(target, sums[0])])
        else:
            numerators = sorted((f for f in large if f.as_base_exp()[1] != -1), key=lambda f: not self.depends(f))
            start = numerators[:2] if len(numerators) >= 2 else numerators + small
            if len(numerators) < 1 or not self.depends(sp.Mul(*start)):
                return None
            for factor in start:
                (large if factor in large else small).remove(factor)
            buffer, steps = target, [Step(target, sp.Mul(*start))]
        for factor in large:
            base, exponent = factor.as_base_exp()
            steps.append(Step(buffer, base, "/=") if exponent == -1 else Step(buffer, factor, "*="))
        if small:
            steps.append(Step(buffer, sp.Mul(*small), "*="))
        return buffer, steps
