"""Float64 central finite differences: the one helper every test that checks a derivative uses.

``vjp`` differentiates ``<cotangent, forward(*inputs)>`` by one input, one entry at a time;
``jvp`` differentiates ``forward`` along a direction. Both step by ``STEP`` both ways, so the
truncation error is O(STEP^2) and the rounding error O(eps / STEP): about 1e-8 relative in float64.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

STEP = 1e-6


def vjp(forward: Callable, cotangent, inputs: Sequence, position: int, params: dict | None = None,
        step: float = STEP) -> np.ndarray:
    """d <cotangent, forward(*inputs, **params)> / d inputs[position], entry by entry."""
    params = params or {}
    array = np.asarray(inputs[position], dtype=np.float64)
    grad = np.zeros_like(array)
    for entry in np.ndindex(array.shape):
        moved = []
        for sign in (1, -1):
            shifted = array.copy()
            shifted[entry] += sign * step
            arguments = list(inputs)
            arguments[position] = shifted
            moved.append(forward(*arguments, **params))
        grad[entry] = np.sum(cotangent * (moved[0] - moved[1])) / (2 * step)
    return grad


def jvp(forward: Callable, tangents: Sequence, inputs: Sequence, params: dict | None = None,
        step: float = STEP) -> np.ndarray:
    """d forward(inputs + h * tangents, **params) / dh at h = 0; a tangent of None is zero."""
    params = params or {}
    plus = [a if t is None else a + step * t for a, t in zip(inputs, tangents)]
    minus = [a if t is None else a - step * t for a, t in zip(inputs, tangents)]
    return (np.asarray(forward(*plus, **params)) - np.asarray(forward(*minus, **params))) / (2 * step)
