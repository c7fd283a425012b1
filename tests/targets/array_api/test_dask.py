"""The array_api kernels on Dask arrays, computed on a multi-process ``dask.distributed`` cluster.

The kernels take arrays chunked along the batch and return lazy Dask arrays (nothing is computed
until asked); parameter gradients are summed across the chunks.  A core axis split across chunks
(the normalised axis in pieces) still gives the NumPy kernel's result: Dask's reductions and matrix
products span chunks.  One cluster (two worker processes, one thread each) serves the module, whose
tests run on one pytest-xdist worker.
"""

from __future__ import annotations

import array_api_compat
import dask.array as da
import numpy as np
import pytest
from dask.distributed import Client, LocalCluster
from helpers.kernels import load_kernel

pytestmark = pytest.mark.xdist_group("dask")

ROWS, N, CHUNK = 64, 24, 4
"""64 rows of 24 entries, 4 rows to a chunk: 16 chunks."""


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as connected:
            yield connected


def arrays(name: str, rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """NumPy inputs of ``name`` (x, and gamma and beta for the norms) and a cotangent."""
    x = rng.standard_normal((ROWS, N))
    inputs = [x] if name == "softmax" else [x, rng.standard_normal(N), rng.standard_normal(N)]
    return inputs, rng.standard_normal((ROWS, N))


@pytest.mark.parametrize("name", ["rmsnorm", "layernorm", "softmax"])
def test_vjp_on_a_local_cluster_matches_numpy(name, client, rng):
    inputs, cotangent = arrays(name, rng)
    lazy = [da.from_array(inputs[0], chunks=(CHUNK, N))] + [da.from_array(a) for a in inputs[1:]]
    assert lazy[0].npartitions >= 16
    grads = load_kernel(name, "array_api").vjp(da.from_array(cotangent, chunks=(CHUNK, N)), *lazy)
    assert all(array_api_compat.is_dask_array(g) for g in grads)  # lazy: nothing computed yet
    assert grads[0].npartitions == lazy[0].npartitions  # dx keeps the chunks of x
    computed = client.compute(list(grads), sync=True)
    want = load_kernel(name, "numpy").vjp(cotangent, *inputs)
    for input_name, got, expected in zip(("x", "gamma", "beta"), computed, want):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12, err_msg=f"{name}: d{input_name}")


@pytest.mark.parametrize("name", ["rmsnorm", "softmax"])
def test_core_axis_split_across_chunks_gives_the_numpy_result(name, client, rng):
    """x chunked (4, 8): each row of 24 lies in three chunks; the row's sums span them."""
    inputs, cotangent = arrays(name, rng)
    lazy = [da.from_array(inputs[0], chunks=(CHUNK, 8))] + [da.from_array(a, chunks=8) for a in inputs[1:]]
    kernel, reference = load_kernel(name, "array_api"), load_kernel(name, "numpy")
    y, grads = kernel.forward(*lazy), kernel.vjp(da.from_array(cotangent, chunks=(CHUNK, 8)), *lazy)
    computed = client.compute([y, *grads], sync=True)
    for got, expected in zip(computed, [reference.forward(*inputs), *reference.vjp(cotangent, *inputs)]):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_labels_are_not_computed_to_be_checked_and_bad_ones_give_nan(client):
    """Reading a Dask array's values would compute it: class labels out of range make the loss NaN."""
    kernel = load_kernel("cross_entropy", "array_api")
    logits = da.zeros((8, 3), chunks=(2, 3))
    good, bad = kernel.forward(logits, da.zeros(8, dtype=int, chunks=2)), kernel.forward(logits, da.full(8, 3, chunks=2))
    assert array_api_compat.is_dask_array(bad)
    good, bad = client.compute([good, bad], sync=True)
    assert good == pytest.approx(np.log(3.0)) and np.isnan(bad)


@pytest.mark.parametrize("name,params", [("batchnorm", {}), ("group_norm", {"num_groups": 3})])
def test_channel_layouts_with_every_axis_split_give_the_numpy_result(name, params, client, rng):
    """x (N, C, H) is reshaped onto the model's axes; chunks of 2 along every axis, C and H included."""
    x, gamma, beta, cotangent = (rng.standard_normal(s) for s in ((8, 6, 5), (6,), (6,), (8, 6, 5)))
    kernel, reference = load_kernel(name, "array_api"), load_kernel(name, "numpy")
    lazy = [da.from_array(a, chunks=2) for a in (x, gamma, beta)]
    y, grads = kernel.forward(*lazy, **params), kernel.vjp(da.from_array(cotangent, chunks=2), *lazy, **params)
    computed = client.compute([y, *grads], sync=True)
    want = [reference.forward(x, gamma, beta, **params), *reference.vjp(cotangent, x, gamma, beta, **params)]
    for got, expected in zip(computed, want):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
