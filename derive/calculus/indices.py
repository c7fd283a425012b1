"""Index bookkeeping: free indices, capture-safe substitution, fresh and canonical index names.

SymPy compares ``Sum`` objects by the name of their summation variable, so two equal sums over
differently named dummies do not cancel; ``canonical_dummies`` renames every bound index to a
name fixed by what the sum depends on, after which equal sums are equal objects and CSE finds them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import sympy as sp

from ..model import ScalarEntry

DUMMY_NAMES = ("j", "l", "r", "s", "t", "u", "v", "w")
WRT_NAMES = ("k", "p", "q", "h", "g", "e", "c", "d")


def free_indices(expr: sp.Basic) -> set[sp.Idx]:
    """The ``Idx`` symbols of ``expr`` that no ``Sum`` inside it binds."""
    return set(_free(expr))


@functools.lru_cache(maxsize=65536)
def _free(expr: sp.Basic) -> frozenset[sp.Idx]:
    """``free_indices``, remembered per subexpression (asked at every node by ``substitute_index``
    and the rules: quadratic in the depth of an expression otherwise)."""
    if isinstance(expr, sp.Idx):
        return frozenset((expr,))
    if isinstance(expr, sp.Sum):
        inner = set(_free(expr.function))
        for var, lower, upper in expr.limits:
            inner.discard(var)
            inner |= _free(lower) | _free(upper)
        return frozenset(inner)
    binds = getattr(expr, "binds", None)
    if isinstance(binds, int):  # a function that binds an index, as max_over(f, l) binds l
        return frozenset().union(*(_free(a) for i, a in enumerate(expr.args) if i != binds)) - {expr.args[binds]}
    return frozenset().union(*(_free(arg) for arg in expr.args))


def index_names(expr: sp.Basic) -> set[str]:
    """The name of every ``Idx`` in ``expr``, free or bound."""
    return {str(idx.label) for idx in expr.atoms(sp.Idx)}


def fresh_index(like: sp.Idx, avoid: Iterable[str], pool: Iterable[str] = DUMMY_NAMES) -> sp.Idx:
    """An index over the same range as ``like`` whose name is not in ``avoid``."""
    taken = set(avoid)
    for name in pool:
        if name not in taken:
            return sp.Idx(name, (like.lower, like.upper))
    number = 1
    while f"{like.label}{number}" in taken:
        number += 1
    return sp.Idx(f"{like.label}{number}", (like.lower, like.upper))


def fresh_entry(base: sp.IndexedBase, dims: tuple[sp.Expr, ...], taken: set[str]) -> sp.Indexed:
    """``base[k, p, ...]``, one index per axis in ``dims``, named from ``WRT_NAMES`` avoiding
    ``taken`` (which it extends); the ``ScalarEntry`` of a scalar input."""
    indices = []
    for dim in dims:
        idx = fresh_index(sp.Idx("k", dim), taken, WRT_NAMES)
        taken.add(str(idx.label))
        indices.append(idx)
    return base[tuple(indices)] if indices else ScalarEntry(base)


def bound_indices(expr: sp.Sum) -> tuple[sp.Idx, ...]:
    """The summation variables of a (possibly multi-limit) ``Sum``, innermost first."""
    return tuple(limit[0] for limit in expr.limits)


def substitute_index(expr: sp.Expr, old: sp.Idx, new: sp.Expr) -> sp.Expr:
    """Replace the free occurrences of index ``old`` by ``new``; sums that rebind ``old`` are kept."""
    if isinstance(expr, _Placeholder) or old not in free_indices(expr):
        return expr  # an index already renamed (a repeated sum variable) is not renamed again
    if expr == old:
        return new
    if isinstance(expr, sp.Sum):
        return sp.Sum(substitute_index(expr.function, old, new), *expr.limits)
    return expr.func(*[substitute_index(arg, old, new) for arg in expr.args])


@functools.lru_cache(maxsize=16384)
def canonical_dummies(expr: sp.Expr) -> sp.Expr:
    """Rename each summation variable to the first pool name its sum leaves free (inner sums first).

    A function of the expression alone (SymPy compares indices with their ranges), remembered per
    process: derivation steps, names and checks ask for the same subexpressions again and again."""
    if not expr.args or not expr.has(sp.Sum):
        return expr
    if not isinstance(expr, sp.Sum):
        return expr.func(*[canonical_dummies(arg) for arg in expr.args])
    body = canonical_dummies(expr.function)
    own = bound_indices(expr)
    taken = {str(i.label) for i in free_indices(body) if i not in own}
    limits = []
    for var, lower, upper in expr.limits:
        new = fresh_index(var, taken | _binders_over(body, var))
        taken.add(str(new.label))
        body = substitute_index(body, var, _Placeholder(new))
        limits.append((new, lower, upper))
    body = body.replace(lambda e: isinstance(e, _Placeholder), lambda e: e.args[0])
    return sp.Sum(body, *limits)


class _Placeholder(sp.Expr):
    """Stands for a renamed index until all of one sum's variables are renamed (no cross-capture)."""

    is_commutative = True
    is_integer = True


def substitute_indices(expr: sp.Expr, old: tuple, new: tuple) -> sp.Expr:
    """Each free index of ``old`` replaced by the matching ``new`` at once (an entry moved to other
    indices; a swap stays a swap), after renaming every sum whose variable a new index would be
    captured by (a definition over a bound l written in at a use site x_{il})."""
    news = [sp.sympify(n) for n in new]
    taken = {str(i.label) for i in free_indices(expr)} | {str(i.label) for n in news for i in n.atoms(sp.Idx)}
    expr = _readable(expr, taken)
    for before, after in zip(old, news):
        expr = substitute_index(expr, before, _Placeholder(after))
    return expr.replace(lambda e: isinstance(e, _Placeholder), lambda e: e.args[0])


def _binders_over(expr: sp.Expr, var: sp.Idx) -> set[str]:
    """Names of the sums inside ``expr`` in whose body ``var`` occurs free (renaming to one captures)."""
    names: set[str] = set()
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Sum) and var in free_indices(node):
            names |= {str(v.label) for v, _, _ in node.limits}
    return names


def readable_dummies(expr: sp.Expr) -> sp.Expr:
    """Rename summation variables for reading: a nested sum never reuses an enclosing sum's name."""
    return _readable(expr, {str(i.label) for i in free_indices(expr)})


def _readable(expr: sp.Expr, taken: set[str]) -> sp.Expr:
    if not expr.args or not expr.has(sp.Sum):
        return expr
    if not isinstance(expr, sp.Sum):
        return expr.func(*[_readable(arg, taken) for arg in expr.args])
    body, limits, inner = expr.function, [], set(taken)
    for var, lower, upper in expr.limits:
        forbidden = inner | _binders_over(body, var) | (index_names(body) - {str(var.label)})
        new = var if str(var.label) not in forbidden else fresh_index(var, forbidden)
        inner.add(str(new.label))
        body = substitute_index(body, var, _Placeholder(new))
        limits.append((new, lower, upper))
    body = body.replace(lambda e: isinstance(e, _Placeholder), lambda e: e.args[0])
    return sp.Sum(_readable(body, inner), *limits)
