"""float32 gradients of every normalisation stay accurate when |mean| / std is large.

A gradient written as sum(dy x) - mu sum(dy) cancels catastrophically in float32 once |mu| >> sigma
(batchnorm's dx had 6e-2 relative error at |mu| / sigma = 1e4); the kernels compute centred values
from a two-pass mean.  The reference is the same kernel in float64 on the same float32-rounded
inputs, so only the arithmetic is compared, norm-wise per result.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.kernels import float_positions, load_kernel, make_inputs, model_of, required_params

from derive.model import registry

NORMALISATIONS = [name for name in registry.names() if model_of(name).category == "normalization"]
BOUND = 1e-3


def relative(got: np.ndarray, exact: np.ndarray) -> float:
    assert got.dtype == np.float32
    return float(np.linalg.norm(got.astype(np.float64) - exact) / np.linalg.norm(exact))


@pytest.mark.parametrize("mean", [1e4, 1e3])
@pytest.mark.parametrize("name", NORMALISATIONS)
def test_float32_gradients_hold_for_large_means(name, mean, kernel_target):
    rng = np.random.default_rng(7)
    kernel = load_kernel(name, kernel_target)
    sizes = {str(d): 6 + 2 * position for position, d in enumerate(model_of(name).dims())}
    inputs, params = make_inputs(name, sizes, (2,), rng)
    inputs[0] = inputs[0] + mean  # x: std about 1 around the mean
    floats = float_positions(name)
    inputs32 = [a.astype(np.float32) if p in floats else a for p, a in enumerate(inputs)]
    inputs64 = [a.astype(np.float64) if p in floats else a for p, a in enumerate(inputs32)]
    params = {**params, **required_params(name, sizes)}
    cotangent = rng.standard_normal(np.shape(kernel.forward(*inputs64, **params))).astype(np.float32)
    grads32 = kernel.vjp(cotangent, *inputs32, **params)
    grads64 = kernel.vjp(cotangent.astype(np.float64), *inputs64, **params)
    for p in floats:
        assert relative(grads32[p], grads64[p]) < BOUND, f"vjp of {kernel.INPUTS[p]}"
    tangents = [rng.standard_normal(a.shape).astype(np.float32) if p in floats else None for p, a in enumerate(inputs32)]
    jvp32 = kernel.jvp(tangents, *inputs32, **params)
    jvp64 = kernel.jvp([t if t is None else t.astype(np.float64) for t in tangents], *inputs64, **params)
    assert relative(jvp32, jvp64) < BOUND
