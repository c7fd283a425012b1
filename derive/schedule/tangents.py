"""Temporaries that need a tangent, kept out of a kernel's shared prelude.

A ``vjp_jvp`` has one output per second-order term, each needing one input's tangent, which the
caller may leave out (None).  ``schedule`` puts a temporary two outputs share in the prelude, where
it would be computed without that tangent; here each output that uses such a temporary computes
it under its own guard instead (renamed apart per output, so the in-place lowering sees distinct
arrays).  What the outputs of one tangent share is then computed once per output: a little more
work, never a read of a missing tangent.
"""

from __future__ import annotations

import sympy as sp

from .cse import Scheduled


def names_in(expr: sp.Expr) -> set[str]:
    """The arrays and symbols ``expr`` reads, by name."""
    return {str(b.label) for b in expr.atoms(sp.IndexedBase)} | {str(s) for s in expr.atoms(sp.Symbol)}


def tangents_private(plan: Scheduled, tangents: dict[str, str]) -> Scheduled:
    """``plan`` with every prelude temporary that reads a tangent (``tangents``: output -> the name
    of the tangent it needs), directly or through another, moved into the outputs that use it."""
    needs: dict[str, set[str]] = {}
    free: list[tuple[sp.Symbol, sp.Expr]] = []
    moved: list[tuple[sp.Symbol, sp.Expr]] = []
    for symbol, expr in plan.prelude:
        names = names_in(expr)
        needs[str(symbol)] = {n for n in names if n in tangents.values()}.union(*(needs.get(n, ()) for n in names))
        (moved if needs[str(symbol)] else free).append((symbol, expr))
    own, results = {}, {}
    for position, (name, steps) in enumerate(plan.own.items()):
        used = names_in(plan.results[name]).union(*(names_in(e) for _, e in steps))
        needed: list[tuple[sp.Symbol, sp.Expr]] = []
        for symbol, expr in reversed(moved):
            if str(symbol) in used:
                needed.insert(0, (symbol, expr))
                used |= names_in(expr)
        mapping = {}
        for symbol, _ in needed:
            new = f"{symbol}_{position}"
            mapping.update({sp.Symbol(str(symbol)): sp.Symbol(new), sp.IndexedBase(str(symbol)): sp.IndexedBase(new)})
        own[name] = tuple((s.xreplace(mapping), e.xreplace(mapping)) for s, e in (*needed, *steps))
        results[name] = plan.results[name].xreplace(mapping)
    return Scheduled(tuple(free), own, results)
