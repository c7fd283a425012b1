"""No n x n intermediate: peak memory of a vjp stays a small multiple of its input (tracemalloc)."""

from __future__ import annotations

import gc
import os
import tracemalloc

import numpy as np
import pytest
from helpers import OPERATORS
from helpers.kernels import NUMBA_BATTERY, float_positions, load_kernel, make_inputs, model_of


def peak_bytes(function, *args) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        function(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_rmsnorm_vjp_peak_memory_under_eight_inputs(kernel_target):
    kernel = load_kernel("rmsnorm", kernel_target)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2048, 2048))
    gamma, beta, dy = rng.standard_normal(2048), rng.standard_normal(2048), rng.standard_normal((2048, 2048))
    kernel.vjp(dy[:2], x[:2], gamma, beta)  # a compiled kernel compiles (or loads) on its first call
    peak = peak_bytes(kernel.vjp, dy, x, gamma, beta)
    # a per-row Jacobian would need 2048 x the input; the budget is 8 x
    assert peak < 8 * x.nbytes, f"peak {peak / x.nbytes:.1f} x the input"


MEMORY_EXEMPT = ("linear algebra", "attention")
ELEMENTS = 1 << 18  # of the largest input: 2 MB in float64


def moderate_inputs(name: str, rng: np.random.Generator) -> tuple[list[np.ndarray], dict]:
    """Inputs of about ELEMENTS entries: batch 64 and the core axes sharing the rest evenly."""
    dims = model_of(name).dims()
    side = max(2, round((ELEMENTS // 64) ** (1 / max(1, len(dims)))))
    return make_inputs(name, {str(d): side for d in dims}, (64,), rng)


BOUNDED = [name for name in OPERATORS
           if model_of(name).category not in MEMORY_EXEMPT and "attention" not in name]


BOUNDS = {"vjp": 4, "forward": 3, "jvp": 4, "vjp_jvp": 6.5}
"""Peak memory over the largest input.  vjp: the issue's target, met by updating the arrays a
kernel owns in place (``schedule/inplace.py``); gelu's erf form holds exactly four arrays.  A forward
builds its result in one new array (gelu: three); a jvp with every tangent given adds each term
into the first (gelu: four).  A vjp_jvp with every tangent given is lowered like a vjp, its terms
added into the first: 6 x for silu, div and mse_loss (dy, the tangents and the function's
derivatives), 6.5 x for group_norm (measured 6.47 x: its x-entry's terms along x and gamma)."""
TARGET_BOUNDS = {"array_api": {"vjp": 5, "forward": 4, "jvp": 6, "vjp_jvp": 7.5}}
"""Bounds of targets that update nothing in place (Array API arrays may be immutable, as JAX's are):
every operation allocates its result, so a kernel holds a few more full-size temporaries, each
released (``del``) after its last use (measured on NumPy arrays: forward 3.5 x for batchnorm, whose
centred statistics take a second centring pass, vjp 4.3 x for group_norm, jvp 5.6 x for gelu,
vjp_jvp 7.0 x for softmax)."""
OVERHEAD = 64 * 1024
"""Bytes that do not grow with the input: per-row statistics of 64 rows, NumPy's bookkeeping."""


def call(kind: str, name: str, kernel, inputs: list, params: dict, rng: np.random.Generator):
    """A call of the kernel's ``kind`` function on ``inputs``, the cotangent and every tangent given."""
    if kind == "forward":
        return lambda: kernel.forward(*inputs, **params)
    if kind == "vjp":
        cotangent = rng.standard_normal(np.shape(kernel.forward(*inputs, **params)))
        return lambda: kernel.vjp(cotangent, *inputs, **params)
    floats = float_positions(name)
    tangents = [rng.standard_normal(a.shape) if p in floats else None for p, a in enumerate(inputs)]
    if kind == "vjp_jvp":
        cotangent = rng.standard_normal(np.shape(kernel.forward(*inputs, **params)))
        return lambda: kernel.vjp_jvp(cotangent, tangents, *inputs, **params)
    return lambda: kernel.jvp(tangents, *inputs, **params)


@pytest.mark.parametrize("kind", BOUNDS)
@pytest.mark.parametrize("name", BOUNDED)
def test_peak_memory_bounded(name, kind, rng, kernel_target):
    """Every elementwise, reduction, normalization and softmax kernel holds at most BOUNDS[kind] x its
    input (TARGET_BOUNDS for a target without in-place updates)."""
    kernel = load_kernel(name, kernel_target)
    inputs, params = moderate_inputs(name, rng)
    largest = max(a.nbytes for a in inputs)
    function = call(kind, name, kernel, inputs, params, rng)
    function()  # a compiled kernel compiles (or loads) on its first call: not the call measured
    peak = peak_bytes(function)
    bound = TARGET_BOUNDS.get(kernel_target, BOUNDS)[kind]
    assert peak <= bound * largest + OVERHEAD, f"{name} {kind}: peak {peak / largest:.2f} x the largest input"


@pytest.mark.parametrize("kind", ["forward", "vjp"])
@pytest.mark.parametrize("name", BOUNDED)
def test_a_dropped_result_is_freed_at_once(name, kind, rng, kernel_target):
    """A kernel keeps no reference to what it returns, not even through a reference cycle: with the
    garbage collector off, dropping the result gives its memory back (a numba kernel's result held
    by a cycle kept every output alive until a collection, and each call mapped fresh pages)."""
    kernel = load_kernel(name, kernel_target)
    inputs, params = moderate_inputs(name, rng)
    function = call(kind, name, kernel, inputs, params, rng)
    function()  # compiled (or loaded), and the kernel's pool started, before measuring
    gc.disable()  # (no collection first: tracemalloc counts only what is allocated after it starts)
    tracemalloc.start()
    try:
        result = function()
        held = tracemalloc.get_traced_memory()[0]
        size = sum(np.asarray(r).nbytes for r in (result if isinstance(result, tuple) else (result,)) if r is not None)
        del result
        left = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        gc.enable()
    assert held >= size, f"{name} {kind}: the result's {size} bytes were not traced ({held})"
    assert left <= OVERHEAD, f"{name} {kind}: {left} bytes of the call still held after its result was dropped"


def nrt_allocations(function) -> int:
    """How many times numba's runtime allocated memory during ``function()`` (its statistics)."""
    from numba.core.runtime import _nrt_python, rtsys

    _nrt_python.memsys_enable_stats()
    before = rtsys.get_allocation_stats().alloc
    function()
    return rtsys.get_allocation_stats().alloc - before


def test_tracemalloc_sees_memory_numba_allocates_inside_compiled_code():
    """numba's runtime allocates through CPython's allocator, so the peak-memory bounds above hold
    for the numba kernels too, scratch arrays inside their loops included."""
    import numba

    @numba.njit
    def scratch(n):
        values = np.ones(n)
        return values.sum()

    scratch(4)
    assert peak_bytes(scratch, 1 << 20) >= 8 << 20


PER_ROW_SAMPLE = [name for name in BOUNDED if os.environ.get("DERIVE_NUMBA_ALL")
                  or name in NUMBA_BATTERY or name == "log_softmax"]
"""The battery's operators (each layout's loops and their reduction lanes) and log_softmax (besides
softmax and cross_entropy, the third whose loops keep a row of exponentials in a scratch array):
each operator compiled costs seconds; DERIVE_NUMBA_ALL=1 checks them all."""


@pytest.mark.parametrize("name", PER_ROW_SAMPLE)
def test_numba_loops_allocate_nothing_per_row(name, rng):
    """The compiled loops of a bounded operator allocate no per-row (or per-unit) scratch: calls on
    4x the rows make as many allocations inside numba as calls on 1x (its fixed bookkeeping)."""
    kernel = load_kernel(name, "numba")
    counts = []
    for rows in (8, 32):
        dims = model_of(name).dims()
        inputs, params = make_inputs(name, {str(d): 6 for d in dims}, (rows,), rng)
        calls = [call(kind, name, kernel, inputs, params, rng) for kind in BOUNDS]
        for function in calls:
            function()  # compiled (or loaded) before counting
        counts.append([nrt_allocations(function) for function in calls])
    assert counts[0] == counts[1], f"{name}: allocations inside numba per call {counts[0]} at 8 rows, {counts[1]} at 32"
