"""No n x n intermediate: peak memory of a vjp stays a small multiple of its input (tracemalloc)."""

from __future__ import annotations

import tracemalloc

import numpy as np

from conftest import load_kernel


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
