"""The Array API kernels' ``out=`` on other libraries' arrays: results written into the caller's
PyTorch or array-api-strict buffers (the NumPy kernel's values), bad buffers refused by name, and
JAX's immutable arrays refused with ``out=``.  NumPy arrays: tests/targets/kernel/test_training.py."""

from __future__ import annotations

import array_api_strict
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from helpers.kernels import load_kernel

LIBRARIES = {"torch": torch.asarray, "array_api_strict": array_api_strict.asarray}


def layernorm(rng, to):
    """layernorm's Array API kernel, its NumPy kernel, NumPy inputs and cotangent and the same as ``to`` makes them."""
    arrays = [rng.standard_normal((3, 4, 6)), rng.standard_normal(6), rng.standard_normal(6)]
    dy = rng.standard_normal((3, 4, 6))
    return load_kernel("layernorm", "array_api"), load_kernel("layernorm"), arrays, dy, [to(a) for a in arrays], to(dy)


def nans(to, shape):
    return to(np.full(shape, np.nan))


@pytest.mark.parametrize("library", LIBRARIES)
def test_results_land_in_the_callers_buffers(library, rng):
    to = LIBRARIES[library]
    kernel, numpy_kernel, arrays, dy, given, cotangent = layernorm(rng, to)
    tangents = [rng.standard_normal(a.shape) for a in arrays]
    out = nans(to, (3, 4, 6))
    assert kernel.forward(*given, out=out) is out
    np.testing.assert_allclose(np.asarray(out), numpy_kernel.forward(*arrays), rtol=1e-12)
    assert kernel.jvp([to(t) for t in tangents], *given, out=out) is out
    np.testing.assert_allclose(np.asarray(out), numpy_kernel.jvp(tangents, *arrays), rtol=1e-10, atol=1e-12)
    for function, leading in ((kernel.vjp, (cotangent,)), (kernel.vjp_jvp, (cotangent, [to(t) for t in tangents]))):
        buffers = tuple(nans(to, a.shape) for a in arrays)
        got = function(*leading, *given, out=buffers)
        assert all(g is b for g, b in zip(got, buffers))
        numpy_leading = (dy,) if function is kernel.vjp else (dy, tangents)
        expected = getattr(numpy_kernel, function.__name__)(*numpy_leading, *arrays)
        for g, e in zip(got, expected):
            np.testing.assert_allclose(np.asarray(g), e, rtol=1e-10, atol=1e-12)
    by_name = {"gamma": nans(to, (6,))}
    got = kernel.vjp(cotangent, *given, out=by_name)
    assert got[1] is by_name["gamma"] and got[0] is not None


def test_bad_torch_buffers_are_refused_by_name(rng):
    kernel, _, _, _, given, cotangent = layernorm(rng, torch.asarray)
    x = given[0]
    cases = [((x[...], None, None), ValueError, r"out\['x'\] overlaps input 'x'"),
             ((None, cotangent[1, 2], None), ValueError, r"out\['gamma'\] overlaps an argument"),
             ((torch.empty(3, 4, 5, dtype=x.dtype), None, None), ValueError, r"out\['x'\] has shape \(3, 4, 5\)"),
             ((torch.empty(3, 4, 6), None, None), TypeError, r"out\['x'\] has dtype torch.float32"),
             ((np.empty((3, 4, 6)), None, None), TypeError, r"out\['x'\] is a ndarray; pass an array of the inputs'"),
             ((torch.empty(3, 4, 6, dtype=x.dtype, requires_grad=True), None, None), ValueError,
              r"out\['x'\] is a leaf tensor that requires grad")]
    for out, error, message in cases:
        with pytest.raises(error, match=message):
            kernel.vjp(cotangent, *given, out=out)
    shared = torch.empty(4, 4, 6, dtype=x.dtype)
    with pytest.raises(ValueError, match=r"out\['gamma'\] overlaps out\['x'\]"):
        kernel.vjp(cotangent, *given, out=(shared[:3], shared[2, 3], None))
    with pytest.raises(ValueError, match="out overlaps input 'x'"):
        kernel.forward(*given, out=x.view(3, 4, 6))  # another tensor, the same memory
    dx, dgamma, _ = kernel.vjp(cotangent, *given, out=(shared[:3], shared[3, 0], None))  # one storage, apart
    assert dx.data_ptr() == shared.data_ptr() and dgamma.data_ptr() == shared[3, 0].data_ptr()


def test_overlap_is_seen_through_array_api_strict_arrays(rng):
    kernel, _, _, _, given, cotangent = layernorm(rng, array_api_strict.asarray)
    with pytest.raises(ValueError, match=r"out\['x'\] overlaps input 'x'"):
        kernel.vjp(cotangent, *given, out=(given[0], None, None))


def test_out_is_refused_for_jax_arrays(rng):
    kernel, _, arrays, dy, given, cotangent = layernorm(rng, jnp.asarray)
    with pytest.raises(TypeError, match="out= writes into the caller's buffers, and JAX arrays are immutable"):
        kernel.forward(*given, out=jnp.zeros((3, 4, 6)))
    with pytest.raises(TypeError, match="JAX arrays are immutable"):
        kernel.vjp(cotangent, *given, out={"x": jnp.zeros((3, 4, 6))})
