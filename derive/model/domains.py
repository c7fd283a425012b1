"""Where an input or a parameter lives, and how every sampler draws inside it.

A domain is a name (``"real"``, ``"positive"``, ``"nonnegative"``, ``"nonzero"``, ``"simplex"`` a
probability vector along the last axis, ``"index"`` class labels) or a SymPy set:
``sp.Interval(0, 1)`` (open or closed ends, unbounded ones too) or ``sp.Range(0, 10)`` (integers).
``draw`` fills arrays for the proofs and tests, ``draw_scalar`` one value for the equality sampler;
both stay strictly inside (never on a closed end: a derivative there is one-sided).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from typing import TypeAlias

import numpy as np
import sympy as sp

from ..errors import ModelError, UndefinedError

Domain: TypeAlias = "str | sp.Set"
NAMES = ("real", "positive", "nonnegative", "nonzero", "simplex", "index")
MARGIN = 0.05
"""How far inside an end every draw stays, as a share of a bounded interval's width."""


def check(domain: object, what: str) -> None:
    """Raise ``ModelError`` unless ``domain`` is one of ``NAMES``, an ``Interval`` or a ``Range``."""
    if isinstance(domain, str) and domain in NAMES:
        return
    if isinstance(domain, sp.Interval) and domain.measure > 0:
        return
    if isinstance(domain, sp.Range) and domain.size > 0 and domain.step == 1 and domain.inf.is_finite:
        return
    raise ModelError(f"{what}: domain {domain!r} is not one of {', '.join(map(repr, NAMES))}, "
                     "sympy.Interval(low, high) or sympy.Range(low, high)")


def describe(domain: Domain) -> str:
    """The domain as a phrase for documentation ("in [0, 1]", "positive")."""
    if isinstance(domain, sp.Interval):
        low, high = (str(end).replace("oo", "inf") for end in (domain.start, domain.end))
        return f"in {'(' if domain.left_open else '['}{low}, {high}{')' if domain.right_open else ']'}"
    if isinstance(domain, sp.Range):
        return f"an integer in {domain.inf}..{domain.sup}"
    named = {"simplex": "a probability vector along its last axis (positive, summing to 1)", "index": "integer labels"}
    return named.get(domain, str(domain))


def _interval(domain: Domain) -> tuple[float, float]:
    """The range ``draw`` draws a real value from (inside the domain, ``MARGIN`` from a closed end)."""
    if isinstance(domain, sp.Interval):
        low, high = float(domain.start), float(domain.end)
        if np.isfinite(low) and np.isfinite(high):
            inset = MARGIN * (high - low)
            return low + inset, high - inset
        return (low + MARGIN, low + 2.0) if np.isfinite(low) else (high - 2.0, high - MARGIN)
    return {"positive": (0.5, 2.0), "nonnegative": (MARGIN, 2.0), "simplex": (MARGIN, 1.0)}.get(domain, (-2.0, 2.0))


def draw(domain: Domain, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """Random float64 values in ``domain`` (``"real"``: standard normal; ``"index"`` is drawn by its caller)."""
    if isinstance(domain, sp.Range):
        return rng.integers(int(domain.inf), int(domain.sup) + 1, size=shape).astype(np.float64)
    if domain == "real":
        return rng.standard_normal(shape)
    if domain == "nonzero":
        values = rng.standard_normal(shape)
        return np.sign(values) * (np.abs(values) + 0.5)
    values = rng.uniform(*_interval(domain), size=shape)
    if domain == "simplex" and len(shape):
        values = values / values.sum(axis=-1, keepdims=True)
    return values


def draw_scalar(domain: Domain, rng: random.Random) -> float:
    """One value in ``domain`` for a single entry (a simplex's entry: in (0, 1))."""
    if isinstance(domain, sp.Range):
        return float(rng.randint(int(domain.inf), int(domain.sup)))
    if domain == "nonzero":
        return rng.choice((-1, 1)) * rng.uniform(0.5, 2.0)
    return rng.uniform(*_interval(domain))


def declared(model) -> dict[str, Domain]:
    """The declared domains of a model (an ``OperatorModel``) for the equality samplers: each input
    by its name, each parameter by its symbol's name ("real" inputs and class labels left out)."""
    found: dict[str, Domain] = {i.name: i.domain for i in model.inputs if i.domain not in ("real", "index")}
    found.update({p.symbol.name: p.domain for p in model.params if p.symbol is not None and p.domain is not None})
    return found


def owners(symbols: Iterable[object], inputs: Iterable[str], params: dict[str, str]) -> list[str]:
    """The inputs and parameters (``params``: symbol name -> parameter name) whose entries
    (``x_0_1``, ``x``) or symbols are among ``symbols``."""
    found = set()
    for symbol in map(str, symbols):
        found |= {name for name in inputs if re.fullmatch(re.escape(name) + r"(_\d+)*", symbol)}
        if symbol in params:
            found.add(params[symbol])
    return sorted(found)


def undefined(where: str, part: object, names: list[str], value: object) -> UndefinedError:
    """The error for a model that is not a finite real number at a sample point: the part that is
    not, what it depends on, and the declaration that keeps the samples where it is defined."""
    depends = f" (it depends on {', '.join(names)})" if names else ""
    return UndefinedError(
        f"{where}: the model is undefined at a sample point: {part} is {value}{depends}; declare where "
        "the input or parameter lives: Input(name, axes, domain=sympy.Interval(0, 1)) or domain='positive', "
        "'nonnegative', 'simplex' (Param(..., domain=...) alike), so that every proof draws inside it")
