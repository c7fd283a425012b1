"""Common-subexpression elimination for a kernel, and where each temporary is computed.

``sympy.cse`` would also pull summation limits (``n - 1``) apart, so sums are hidden behind an
opaque ``Reduce(body, j...)`` first and restored after, and every index (whose range holds the same
limits) behind a plain symbol.  Each temporary becomes an indexed array
(its free indices say which axes it spans).  Temporaries needed by one optional output only are
computed under that output's guard; the rest go in the shared prelude.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import sympy as sp

from ..calculus.indices import free_indices

Reduce = sp.Function("Reduce", real=True)
"""A sum with its limits hidden (``hide_limits``).  Real, as every value of a kernel is: SymPy asks
whether tanh(...) of one is real, and without the assumption it expands the imaginary part of the
whole argument (one random model spent over a minute there)."""
Kept = sp.Function("Kept", real=True)
"""A sum of terms computed on its own before it meets other terms (``centring.py``'s x - m, which
float32 must not add to a small correction first); the schedule drops the wrapper."""


@dataclass(frozen=True)
class Output:
    """One result of a kernel: its name, its expression, the input whose presence gates it."""

    name: str
    expr: sp.Expr
    guard: str | None = None


@dataclass(frozen=True)
class Scheduled:
    """Temporaries as (name, expression) in order: shared ones, then each output's own."""

    prelude: tuple[tuple[sp.Symbol, sp.Expr], ...]
    own: dict[str, tuple[tuple[sp.Symbol, sp.Expr], ...]]
    results: dict[str, sp.Expr]


def hide_limits(expr: sp.Expr) -> sp.Expr:
    """Sum(f, (j, 0, n - 1)) -> Reduce(f, j)."""
    return expr.replace(lambda e: isinstance(e, sp.Sum),
                        lambda e: Reduce(e.function, *(limit[0] for limit in e.limits)))


def restore_limits(expr: sp.Expr) -> sp.Expr:
    """Reduce(f, j) -> Sum(f, (j, 0, n - 1)); Kept(a) -> a."""
    expr = expr.replace(lambda e: isinstance(e, sp.Function) and e.func == Kept, lambda e: e.args[0])
    return expr.replace(lambda e: isinstance(e, sp.Function) and e.func == Reduce,
                        lambda e: sp.Sum(e.args[0], *((j, j.lower, j.upper) for j in e.args[1:])))


def inline_outer_products(pairs: list, reduced: list) -> tuple[list, list]:
    """Put back temporaries that are products spanning more axes than any of their factors.

    Such a temporary (exp(s_ij) v_je, an L x S x V array) only feeds contractions, which one
    einsum does without building it.
    """
    kept: list = []
    replace: dict[sp.Basic, sp.Basic] = {}
    spans: dict = {}

    def span(expr: sp.Expr) -> set:
        found = set(free_indices(restore_limits(expr)))
        for symbol in expr.atoms(sp.Symbol):
            found |= spans.get(symbol, set())
        return found

    for symbol, definition in pairs:
        definition = definition.xreplace(replace)
        spans[symbol] = span(definition)
        if isinstance(definition, sp.Mul) and len(spans[symbol]) > max(len(span(f)) for f in definition.args):
            replace[symbol] = definition
        else:
            kept.append((symbol, definition))
    return kept, [r.xreplace(replace) for r in reduced]


def as_array(symbol: sp.Symbol, definition: sp.Expr) -> sp.Expr:
    """A temporary as ``t[i...]`` over its free indices (sorted by name), or a bare symbol."""
    indices = sorted(free_indices(definition), key=lambda i: str(i.label))
    if not indices or isinstance(definition, sp.logic.boolalg.Boolean):
        return symbol  # a condition stays a symbol: Piecewise takes only booleans
    return sp.IndexedBase(str(symbol))[tuple(indices)]


def schedule(outputs: list[Output], prefix: str = "t") -> Scheduled:
    """Run CSE over all outputs and place every temporary in the prelude or under one guard.
    Remembered (the NumPy and the Array API kernels schedule the same outputs); nothing changes a
    ``Scheduled`` once made."""
    return _schedule(tuple(outputs), prefix)


@functools.lru_cache(maxsize=256)
def _schedule(outputs: tuple[Output, ...], prefix: str) -> Scheduled:
    indices = sorted(set().union(*(o.expr.atoms(sp.Idx) for o in outputs)), key=str)
    opaque = {i: sp.Dummy(str(i.label)) for i in indices}  # an Idx's range is not a subexpression
    back = {symbol: i for i, symbol in opaque.items()}
    hidden = [hide_limits(o.expr).xreplace(opaque) for o in outputs]
    pairs, reduced = sp.cse(hidden, symbols=sp.numbered_symbols(prefix), order="canonical")
    pairs = [(symbol, definition.xreplace(back)) for symbol, definition in pairs]
    reduced = [r.xreplace(back) for r in reduced]
    pairs, reduced = inline_outer_products(pairs, reduced)
    arrays: dict[sp.Symbol, sp.Expr] = {}
    temporaries: list[tuple[sp.Symbol, sp.Expr]] = []
    for symbol, definition in pairs:
        definition = restore_limits(definition).xreplace(arrays)
        arrays[symbol] = as_array(symbol, definition)
        temporaries.append((symbol, definition))
    results = {o.name: restore_limits(r).xreplace(arrays) for o, r in zip(outputs, reduced)}
    temporaries, results = reuse_products(temporaries, results, arrays)
    users = _users(temporaries, outputs, results)
    shared = tuple(t for t in temporaries if _is_shared(users[t[0]], outputs))
    own = {o.name: tuple(t for t in temporaries if users[t[0]] == {o.name} and t not in shared)
           for o in outputs}
    return Scheduled(prelude=shared, own=own, results=results)


def reuse_products(temporaries: list[tuple[sp.Symbol, sp.Expr]], results: dict[str, sp.Expr],
                   arrays: dict[sp.Symbol, sp.Expr]) -> tuple[list[tuple[sp.Symbol, sp.Expr]], dict[str, sp.Expr]]:
    """A product holding every factor of an earlier temporary's product uses the temporary.

    t4 = dy*gamma;  t3*dy*gamma -> t3*t4  (``sympy.cse`` misses products that its other
    substitutions split up, and recomputing one costs a pass over a full-size array).
    """
    for position, (symbol, definition) in enumerate(temporaries):
        if not isinstance(definition, sp.Mul):
            continue
        wanted, replacement = Counter(sp.Mul.make_args(definition)), arrays[symbol]
        later = temporaries[position + 1:]
        temporaries[position + 1:] = [(s, _use_product(d, wanted, replacement)) for s, d in later]
        results = {name: _use_product(expr, wanted, replacement) for name, expr in results.items()}
    return temporaries, results


def _use_product(expr: sp.Expr, wanted: Counter, replacement: sp.Expr) -> sp.Expr:
    """Each product in ``expr`` holding every factor of ``wanted`` has them replaced by ``replacement``."""
    def holds(node) -> bool:
        return isinstance(node, sp.Mul) and not wanted - Counter(node.args)

    def rewrite(node: sp.Mul) -> sp.Expr:
        return sp.Mul(replacement, *(Counter(node.args) - wanted).elements())

    return expr.replace(holds, rewrite)


def _users(temporaries: list[tuple[sp.Symbol, sp.Expr]], outputs: Sequence[Output],
           results: dict[str, sp.Expr]) -> dict[sp.Symbol, set[str]]:
    """For each temporary, the outputs that need it, directly or through other temporaries."""
    users: dict[sp.Symbol, set[str]] = {symbol: set() for symbol, _ in temporaries}
    for output in outputs:
        for symbol in _mentioned(results[output.name], users):
            users[symbol].add(output.name)
    for symbol, definition in reversed(temporaries):
        for needed in _mentioned(definition, users):
            users[needed] |= users[symbol]
    return users


def _mentioned(expr: sp.Expr, known: dict[sp.Symbol, set[str]]) -> set[sp.Symbol]:
    names = {str(s) for s in known}
    found = {s for s in expr.atoms(sp.Symbol) if str(s) in names}
    found |= {sp.Symbol(str(b.label)) for b in expr.atoms(sp.IndexedBase) if str(b.label) in names}
    return {s for s in known if str(s) in {str(f) for f in found}}


def _is_shared(users: set[str], outputs: Sequence[Output]) -> bool:
    guards = {o.name: o.guard for o in outputs}
    return len(users) != 1 or any(guards[name] is None for name in users)
