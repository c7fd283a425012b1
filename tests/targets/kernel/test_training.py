"""Training-grade kernels: residuals the forward saves for the backward (NumPy, numba, Array API),
and results written into the caller's buffers (``out=``: NumPy, numba, Array API on NumPy arrays;
other libraries' arrays: tests/targets/array_api/test_buffers.py), checked for shape, dtype and overlap."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.kernels import load_kernel

TARGETS = ("numpy", "numba", "array_api")
"""The targets whose kernels write into the caller's buffers."""
SAVING = TARGETS
"""The targets whose kernels save residuals."""


def layernorm(rng, target, batch=(3, 4), n=6):
    kernel = load_kernel("layernorm", target)
    arrays = [rng.standard_normal(batch + (n,)), rng.standard_normal(n), rng.standard_normal(n)]
    return kernel, arrays, rng.standard_normal(batch + (n,))


@pytest.mark.parametrize("target", SAVING)
@pytest.mark.parametrize(("name", "saved"), [("layernorm", ("mu", "sigma")), ("rmsnorm", ("r",)),
                                             ("softmax", ("y",)), ("log_softmax", ("y",))])
def test_the_engine_saves_statistics_or_the_output(target, name, saved):
    assert load_kernel(name, target).RESIDUALS == saved


@pytest.mark.parametrize("target", SAVING)
def test_forward_returns_per_row_statistics(rng, target):
    kernel, arrays, _ = layernorm(rng, target)
    y, saved = kernel.forward(*arrays, residuals=True)
    x = arrays[0]
    np.testing.assert_allclose(y, kernel.forward(*arrays))
    np.testing.assert_allclose(saved["mu"], x.mean(-1), rtol=1e-12)
    np.testing.assert_allclose(saved["sigma"], np.sqrt(x.var(-1) + 1e-5), rtol=1e-12)


@pytest.mark.parametrize("target", SAVING)
def test_vjp_and_jvp_read_the_residuals_instead_of_recomputing(rng, target):
    kernel, arrays, dy = layernorm(rng, target)
    _, saved = kernel.forward(*arrays, residuals=True)
    for got, want in zip(kernel.vjp(dy, *arrays, residuals=saved), kernel.vjp(dy, *arrays)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    tangents = [rng.standard_normal(np.shape(a)) for a in arrays]
    np.testing.assert_allclose(kernel.jvp(tangents, *arrays, residuals=saved), kernel.jvp(tangents, *arrays),
                               rtol=1e-10, atol=1e-12)
    doubled = {**saved, "sigma": 2 * saved["sigma"]}  # read, not recomputed: a wrong sigma shows
    assert not np.allclose(kernel.vjp(dy, *arrays, residuals=doubled)[0], kernel.vjp(dy, *arrays)[0])


@pytest.mark.parametrize("target", SAVING)
@pytest.mark.parametrize(("name", "wrong"), [("layernorm", "sigma"), ("rmsnorm", "r"), ("softmax", "y")])
def test_vjp_jvp_reads_the_residuals_instead_of_recomputing(rng, target, name, wrong):
    kernel = load_kernel(name, target)
    arrays = [rng.standard_normal((3, 4, 6))] + [rng.standard_normal(6) for _ in kernel.INPUTS[1:]]
    dy = rng.standard_normal((3, 4, 6))
    tangents = [rng.standard_normal(a.shape) for a in arrays]
    _, saved = kernel.forward(*arrays, residuals=True)
    for got, want in zip(kernel.vjp_jvp(dy, tangents, *arrays, residuals=saved), kernel.vjp_jvp(dy, tangents, *arrays)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    scaled = {**saved, wrong: 1.5 * np.asarray(saved[wrong])}  # read, not recomputed: a wrong residual shows
    assert not np.allclose(kernel.vjp_jvp(dy, tangents, *arrays, residuals=scaled)[0],
                           kernel.vjp_jvp(dy, tangents, *arrays)[0])


@pytest.mark.parametrize("target", SAVING)
def test_softmax_vjp_from_the_saved_output_alone(rng, target):
    kernel = load_kernel("softmax", target)
    x, dy = rng.standard_normal((5, 7)), rng.standard_normal((5, 7))
    y, saved = kernel.forward(x, residuals=True)
    assert saved["y"] is y
    np.testing.assert_allclose(kernel.vjp(dy, x, residuals=saved)[0], kernel.vjp(dy, x)[0], rtol=1e-10, atol=1e-13)
    other = {"y": kernel.forward(x + rng.standard_normal((5, 7)))}  # x is not read: the residual is
    np.testing.assert_allclose(kernel.vjp(dy, x, residuals=other)[0], kernel.vjp(dy, x + 0 * x, residuals=other)[0])
    assert not np.allclose(kernel.vjp(dy, x, residuals=other)[0], kernel.vjp(dy, x)[0])


@pytest.mark.parametrize("target", SAVING)
def test_bad_residuals_are_refused_by_name(rng, target):
    kernel, arrays, dy = layernorm(rng, target)
    _, saved = kernel.forward(*arrays, residuals=True)
    with pytest.raises(ValueError, match="residuals must be the mapping .* mu, sigma"):
        kernel.vjp(dy, *arrays, residuals={"mu": saved["mu"]})
    with pytest.raises(ValueError, match="residual 'sigma' has shape \\(3,\\); this call saves \\(3, 4\\)"):
        kernel.vjp(dy, *arrays, residuals={**saved, "sigma": saved["sigma"][:, 0]})


@pytest.mark.parametrize("target", TARGETS)
def test_vjp_writes_into_the_callers_buffers(rng, target):
    kernel, arrays, dy = layernorm(rng, target)
    _, saved = kernel.forward(*arrays, residuals=True)
    expected = kernel.vjp(dy, *arrays)
    buffers = tuple(np.full_like(a, np.nan) for a in arrays)
    got = kernel.vjp(dy, *arrays, residuals=saved, out=buffers)
    assert all(g is b for g, b in zip(got, buffers))
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)
    by_name = {"x": np.empty_like(arrays[0])}
    got = kernel.vjp(dy, *arrays, out=by_name)
    assert got[0] is by_name["x"] and got[1] is not None


@pytest.mark.parametrize("target", TARGETS)
def test_forward_writes_into_out(rng, target):
    kernel, arrays, _ = layernorm(rng, target)
    out = np.full_like(arrays[0], np.nan)
    assert kernel.forward(*arrays, out=out) is out
    np.testing.assert_allclose(out, kernel.forward(*arrays))


def test_numba_writes_in_place_without_a_copy(rng):
    kernel, arrays, dy = layernorm(rng, "numba", batch=(64,), n=32)
    _, saved = kernel.forward(*arrays, residuals=True)
    buffers = (np.empty_like(arrays[0]), None, None)
    original = np.copyto
    calls = []
    np.copyto = lambda *args, **keywords: (calls.append(args), original(*args, **keywords))
    try:
        kernel.vjp(dy, *arrays, residuals=saved, out=buffers, wrt="x")
    finally:
        np.copyto = original
    assert calls == []


@pytest.mark.parametrize("target", TARGETS)
def test_bad_buffers_are_refused_by_name(rng, target):
    kernel, arrays, dy = layernorm(rng, target)
    x = arrays[0]
    cases = [((x, None, None), ValueError, "out\\['x'\\] overlaps input 'x'"),
             ((np.empty_like(dy), dy[0, 0], None), ValueError, "out\\['gamma'\\] overlaps"),
             ((np.empty((3, 4, 5)), None, None), ValueError,
              "out\\['x'\\] has shape \\(3, 4, 5\\); the result has shape \\(3, 4, 6\\)"),
             ((np.empty(x.shape, np.float32), None, None), TypeError, "out\\['x'\\] has dtype float32"),
             ((None, None), ValueError, "one buffer \\(or None\\) per input"),
             ({"z": np.empty(3)}, ValueError, "out names 'z'")]
    for out, error, message in cases:
        with pytest.raises(error, match=message):
            kernel.vjp(dy, *arrays, out=out)
    shared = np.empty_like(x)
    with pytest.raises(ValueError, match="out\\['gamma'\\] overlaps out\\['x'\\]"):
        kernel.vjp(dy, *arrays, out=(shared, shared[0, 0], None))
    with pytest.raises(ValueError, match="out overlaps"):
        kernel.forward(*arrays, out=x[...])


@pytest.mark.parametrize("target", TARGETS)
def test_a_buffer_for_an_input_not_given_is_left_alone(rng, target):
    kernel, arrays, dy = layernorm(rng, target)
    x = arrays[0]
    spare = np.full(6, 7.0)
    dx, dgamma, dbeta = kernel.vjp(dy, x, out=(np.empty_like(x), spare, None))
    assert dgamma is None and dbeta is None and (spare == 7.0).all()
    np.testing.assert_allclose(dx, kernel.vjp(dy, x)[0])
