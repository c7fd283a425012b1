"""Decide that two index expressions are equal before anything claims so in print.

``check_equal`` tries SymPy first (the difference of the two sides, with summation variables
renamed canonically, expands to zero); where SymPy cannot decide, for example a step that still
holds open derivatives or a delta collapsed against a sum, it evaluates both sides at random
points for several sizes with ``concrete.compare`` (open derivatives by plain ``sympy.diff``).
Disagreement raises ``UnverifiedEqualityError``: an unverified step is never written.
"""

from __future__ import annotations

import functools

import sympy as sp

from .concrete import Disagreement, compare
from .differentiate import DerivationError, Partial
from .indices import canonical_dummies

SYMBOLIC = "symbolic"
RANDOM_POINTS = "random points"
CHECK_SIZES = (1, 2, 3)


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


def check_equal(left: sp.Expr, right: sp.Expr, dims: tuple[sp.Symbol, ...], what: str,
                labels: dict[str, sp.Expr] | None = None) -> str:
    """How ``left == right`` was confirmed (``SYMBOLIC`` or ``RANDOM_POINTS``); raises if it is not.

    ``labels``: inputs holding integer class labels (and the axis size they index into), which
    random points fill with valid labels.
    """
    method, disagreement = _decide(left, right, tuple(dims), tuple(sorted((labels or {}).items())))
    if disagreement is not None:
        raise UnverifiedEqualityError(f"{what}: the two sides differ {disagreement}")
    return method


@functools.lru_cache(maxsize=2048)
def _decide(left: sp.Expr, right: sp.Expr, dims: tuple[sp.Symbol, ...],
            labels: tuple[tuple[str, sp.Expr], ...]) -> tuple[str, Disagreement | None]:
    """(method, None) when equal, (method, where they differ) otherwise; remembered per process."""
    if symbolically_equal(left, right):
        return SYMBOLIC, None
    return RANDOM_POINTS, compare(left, right, dims, sizes=CHECK_SIZES, trials=1, patterns_above=16,
                                  labels=dict(labels))
