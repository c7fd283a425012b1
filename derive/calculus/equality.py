"""Decide that two index expressions are equal before anything claims so in print.

``check_equal`` tries SymPy first (the difference of the two sides, with summation variables
renamed canonically, expands to zero); where SymPy cannot decide, for example a step that still
holds open derivatives or a delta collapsed against a sum, it evaluates both sides at random
points for several sizes, as ``concrete.compare`` does (open derivatives by plain ``sympy.diff``).
Disagreement raises ``UnverifiedEqualityError``: an unverified step is never written.
"""

from __future__ import annotations

import cmath
import functools
import itertools
import random
import re
from collections.abc import Callable

import sympy as sp

from ..errors import UndefinedError
from ..model import domains, free_sizes
from ..model.functions import elementary
from .compact import tidy
from .concrete import Disagreement, agree, coincidence_patterns, expander, random_point, symbols_of
from .differentiate import DerivationError, Partial
from .indices import canonical_dummies, free_indices

SYMBOLIC = "symbolic"
RANDOM_POINTS = "random points"
CHECK_SIZES = (1, 2, 3)
LARGEST_SIZE_PATTERNS = 4
"""At the largest size, how many patterns of coinciding indices are drawn (all at smaller sizes)."""


class UnverifiedEqualityError(DerivationError):
    """A claimed equality that the engine could not confirm; the message names where it fails."""


def symbolically_equal(left: sp.Expr, right: sp.Expr) -> bool:
    """True when SymPy proves ``left == right`` by expanding the difference (no false positives)."""
    difference = canonical_dummies(left) - canonical_dummies(right)
    if difference == 0:
        return True
    if left.atoms(Partial) != right.atoms(Partial):
        return False  # an open derivative against its worked-out form: not decidable by expanding
    try:
        return sp.expand(difference) == 0
    except (TypeError, ValueError, NotImplementedError):
        return False


RULE_BUDGET = 300
"""The most terms ``proved_by_rules`` lets a side expand to: past it, it gives up at once (the
equation is then checked at points) rather than spend seconds expanding."""


def expanded_terms(expr: sp.Expr) -> int:
    """An upper bound on the number of terms ``sp.expand(expr)`` makes, counted without expanding."""
    if isinstance(expr, sp.Add):
        return sum(expanded_terms(a) for a in expr.args)
    if isinstance(expr, sp.Mul):
        return functools.reduce(lambda total, a: total * expanded_terms(a), expr.args, 1)
    if isinstance(expr, sp.Pow) and expr.exp.is_Integer and expr.exp > 1:
        return expanded_terms(expr.base) ** int(expr.exp)
    if isinstance(expr, sp.Sum):
        return expanded_terms(expr.function)
    return 1


@functools.lru_cache(maxsize=1024)
def proved_by_rules(left: sp.Expr, right: sp.Expr, budget: int = RULE_BUDGET) -> bool:
    """True when both sides, brought to normal form by the engine's own rewriting rules (``compact.tidy``:
    expanded, sums split, constant factors pulled out, deltas collapsed), are ``symbolically_equal``:
    a proof for symbolic sizes, so valid for every n (no false positives; False is not a disproof).
    A side that would expand past ``budget`` terms is not tried (False at once); remembered per process."""
    if left.atoms(Partial) or right.atoms(Partial):
        return False
    if max(expanded_terms(left), expanded_terms(right)) > budget:
        return False
    try:
        return symbolically_equal(tidy(left), tidy(right))
    except (TypeError, ValueError, NotImplementedError, RecursionError):
        return False


def check_equal(left: sp.Expr, right: sp.Expr, dims: tuple[sp.Symbol, ...], what: str,
                labels: dict[str, sp.Expr | domains.Domain] | None = None) -> str:
    """How ``left == right`` was confirmed (``SYMBOLIC`` or ``RANDOM_POINTS``); raises if it is not.

    ``labels``: inputs holding integer class labels (and the axis size they index into), which
    random points fill with valid labels; or an input or parameter symbol with its domain (a name
    or a SymPy set, ``model/domains.py``), which random points draw inside.  A side that is not a
    finite real number at a point is an ``UndefinedError``, never agreement.
    """
    try:
        method, disagreement = _decide(left, right, tuple(dims), tuple(sorted((labels or {}).items())))
    except UndefinedError as error:
        raise UndefinedError(f"{what}: {error}") from None
    if disagreement is not None:
        raise UnverifiedEqualityError(f"{what}: the two sides differ {disagreement}")
    return method


@functools.lru_cache(maxsize=2048)
def _decide(left: sp.Expr, right: sp.Expr, dims: tuple[sp.Symbol, ...],
            labels: tuple[tuple[str, sp.Expr], ...]) -> tuple[str, Disagreement | None]:
    """(method, None) when equal, (method, where they differ) otherwise; remembered per process."""
    if symbolically_equal(left, right):
        return SYMBOLIC, None
    return RANDOM_POINTS, sample_compare(left, right, dims, dict(labels))


def _is_domain(value: object) -> bool:
    return isinstance(value, (str, sp.Set))


def _undefined(expr: sp.Expr, point: dict, value: complex) -> UndefinedError:
    """The error naming the innermost part of ``expr`` that is not a finite real number at ``point``."""
    def defined(node: sp.Basic) -> bool:
        number = node.xreplace(point).evalf(30)
        return bool(number.is_real and number.is_finite) if number.is_number else True

    node = expr
    while True:
        inner = next((a for a in node.args if isinstance(a, sp.Expr) and not defined(a)), None)
        if inner is None:
            break
        node = inner
    names = sorted({re.sub(r"(_\d+)+$", "", str(s)) for s in node.free_symbols})
    shown = ", ".join(f"{s}={float(point[s]):.6g}" for s in sorted(node.free_symbols, key=str) if s in point)
    value = complex(node.xreplace(point).evalf(30)) if node.xreplace(point).evalf(30).is_number else value
    return domains.undefined(f"at {shown}", node, names, value if value.imag else value.real)


@functools.lru_cache(maxsize=8)
def _quick(sizes: tuple[tuple[sp.Symbol, int], ...]) -> tuple[Callable, dict]:
    """The quick expander at ``sizes`` and its ``elementary`` memo, kept across checks: the steps of
    a derivation and their displayed forms share most sums, each then written out once."""
    return expander(dict(sizes), evaluate=False), {}


def _number(expr: sp.Expr) -> complex:
    try:
        return complex(expr.evalf(30))
    except TypeError:
        functions = sorted({type(f).__name__ for f in expr.atoms(sp.Function) if not f.evalf(5).is_number})
        raise DerivationError(
            f"cannot evaluate {', '.join(functions) or expr} at numbers to check a step; give the function "
            "an as_elementary() method (its definition in elementary functions) or _eval_evalf") from None


def sample_compare(left: sp.Expr, right: sp.Expr, dims: tuple[sp.Symbol, ...], labels: dict[str, sp.Expr],
                   sizes: tuple[int, ...] = CHECK_SIZES, all_below: int = 16, seed: int = 0,
                   tolerance: float = 1e-12) -> Disagreement | None:
    """``concrete.compare`` at one random point per combination of free index values, or, above
    ``all_below`` combinations, per pattern of coinciding indices (what a delta can see; at the
    largest size a few of them); integer label inputs get valid labels.  Each side is first written
    out as it stands (``expander(evaluate=False)``, several times faster) and evaluated in float64;
    where the two do not agree so, SymPy's canonical forms are built and judged as before."""
    rng = random.Random(seed)
    indices = sorted(free_indices(left) | free_indices(right), key=lambda i: str(i.label))
    dims = free_sizes(dims)
    where = {name: domain for name, domain in labels.items() if _is_domain(domain)}
    for size in sizes:
        fixed = {d: size for d in dims}
        bounds = {name: int(sp.sympify(upper).subs(fixed)) for name, upper in labels.items() if not _is_domain(upper)}
        ranges = [range(int((i.upper - i.lower + 1).subs(fixed))) for i in indices]
        combos = list(itertools.product(*ranges))
        (quick, written), exact = _quick(tuple(fixed.items())), expander(fixed)
        if len(combos) > all_below:
            combos = coincidence_patterns(ranges, [i.upper - i.lower for i in indices], rng)
            if size == max(sizes) and len(combos) > LARGEST_SIZE_PATTERNS:  # the rest were tried at smaller sizes
                combos = rng.sample(combos, LARGEST_SIZE_PATTERNS)
        for at in combos:
            values = dict(zip(indices, at))
            a, b = elementary(quick(left, values), written), elementary(quick(right, values), written)
            point = random_point(symbols_of(a) | symbols_of(b), rng, bounds, where)
            if agree(a, b, point, real=True):
                continue  # equal in float64, as built (SymPy's canonical forms are not needed for numbers)
            a, b = elementary(exact(left, values)), elementary(exact(right, values))  # SymPy's forms
            symbols = symbols_of(a) | symbols_of(b)
            kept = {symbol: point[symbol] for symbol in symbols & set(point)}
            point = {**random_point(symbols - set(kept), rng, bounds, where), **kept}
            if agree(a, b, point, real=True):
                continue  # equal in float64; a difference is confirmed in 30 digits before it is reported
            va, vb = _number(a.xreplace(point)), _number(b.xreplace(point))
            for side, value in ((a, va), (b, vb)):
                if not (cmath.isfinite(value) and abs(value.imag) <= tolerance * max(1.0, abs(value))):
                    raise _undefined(side, point, value)
            if abs(va - vb) > tolerance * max(1.0, abs(va), abs(vb)):
                return Disagreement({str(d): size for d in dims}, {str(i.label): v for i, v in values.items()},
                                    point, va.real, vb.real)
    return None
