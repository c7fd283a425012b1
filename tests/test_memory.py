"""No n x n intermediate: peak memory of a vjp stays a small multiple of its input (tracemalloc)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from derive import registry

from conftest import OPERATORS, float_positions, load_kernel, make_inputs


def peak_bytes(function, *args) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        function(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_rmsnorm_vjp_peak_memory_under_eight_inputs():
    kernel = load_kernel("rmsnorm")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2048, 2048))
    gamma, beta, dy = rng.standard_normal(2048), rng.standard_normal(2048), rng.standard_normal((2048, 2048))
    peak = peak_bytes(kernel.vjp, dy, x, gamma, beta)
    # a per-row Jacobian would need 2048 x the input; the budget is 8 x
    assert peak < 8 * x.nbytes, f"peak {peak / x.nbytes:.1f} x the input"


MEMORY_EXEMPT = ("linear algebra", "attention")
ELEMENTS = 1 << 18  # of the largest input: 2 MB in float64


def moderate_inputs(name: str, rng: np.random.Generator) -> tuple[list[np.ndarray], dict]:
    """Inputs of about ELEMENTS entries: batch 64 and the core axes sharing the rest evenly."""
    dims = registry.get(name).dims()
    side = max(2, round((ELEMENTS // 64) ** (1 / max(1, len(dims)))))
    return make_inputs(name, {str(d): side for d in dims}, (64,), rng)


BOUNDED = [name for name in OPERATORS
           if registry.get(name).category not in MEMORY_EXEMPT and "attention" not in name]


BOUND = 4
"""The issue's target: vjps update the arrays they own in place (``emit/inplace.py``), so even
layernorm, batchnorm and group_norm stay under 4x (gelu's erf form holds exactly four arrays)."""
OVERHEAD = 64 * 1024
"""Bytes that do not grow with the input: per-row statistics of 64 rows, NumPy's bookkeeping."""


@pytest.mark.parametrize("name", BOUNDED)
def test_vjp_peak_memory_bounded(name, rng):
    """Every elementwise, reduction, normalization and softmax vjp holds at most BOUND x its input."""
    kernel = load_kernel(name)
    inputs, params = moderate_inputs(name, rng)
    cotangent = rng.standard_normal(np.shape(kernel.forward(*inputs, **params)))
    largest = max(a.nbytes for a in inputs)
    peak = peak_bytes(lambda: kernel.vjp(cotangent, *inputs, **params))
    assert peak <= BOUND * largest + OVERHEAD, f"{name}: peak {peak / largest:.2f} x the largest input"


FORWARD_BOUND = 3
"""A forward builds its result in one new array and updates it in place; gelu's erf form holds three."""


@pytest.mark.parametrize("name", BOUNDED)
def test_forward_peak_memory_bounded(name, rng):
    """Every elementwise, reduction, normalization and softmax forward holds at most FORWARD_BOUND x its input."""
    kernel = load_kernel(name)
    inputs, params = moderate_inputs(name, rng)
    largest = max(a.nbytes for a in inputs)
    peak = peak_bytes(lambda: kernel.forward(*inputs, **params))
    assert peak <= FORWARD_BOUND * largest + OVERHEAD, f"{name}: peak {peak / largest:.2f} x the largest input"


JVP_BOUND = 4
"""A jvp with every tangent given adds one term per input into the first; gelu's holds exactly four."""


@pytest.mark.parametrize("name", BOUNDED)
def test_jvp_peak_memory_bounded(name, rng):
    """Every elementwise, reduction, normalization and softmax jvp (all tangents given) holds at most JVP_BOUND x."""
    kernel = load_kernel(name)
    inputs, params = moderate_inputs(name, rng)
    floats = float_positions(name)
    tangents = [rng.standard_normal(a.shape) if p in floats else None for p, a in enumerate(inputs)]
    largest = max(a.nbytes for a in inputs)
    peak = peak_bytes(lambda: kernel.jvp(tangents, *inputs, **params))
    assert peak <= JVP_BOUND * largest + OVERHEAD, f"{name}: peak {peak / largest:.2f} x the largest input"
