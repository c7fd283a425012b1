"""The array_api kernels on other libraries' arrays, against the NumPy kernels.

Every operator's forward, vjp and jvp with array-api-strict (which refuses anything outside the
standard), PyTorch and JAX arrays, in float64 and float32, on two shapes: the results equal the
NumPy kernel's and are arrays of the inputs' library, dtype and device.  Every operator traces under
``jax.jit``; one kernel compiles under ``torch.compile`` with no graph break.  Dask: the kernels take
arrays chunked along the batch and return lazy arrays, computed on a multi-process
``dask.distributed`` cluster; a core axis split across chunks still gives the NumPy kernel's result.
"""

from __future__ import annotations

import sys

import array_api_compat
import array_api_strict
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from helpers import OPERATORS
from helpers.kernels import float_positions, load_kernel, make_inputs, shape_cases


@pytest.fixture(autouse=True)
def float64_jax():
    """float64 JAX arrays (the default would make them float32), for each test: another module's
    tests in the same worker may switch the setting off."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


EAGER = {"array_api_strict": array_api_strict.asarray, "torch": torch.asarray}
"""Libraries run op by op.  JAX runs under jax.jit (below): op by op it compiles every operation
for every new shape, tens of seconds for attention."""


def case(name: str, position: int, rng, dtype=np.float64):
    """NumPy inputs (floats in ``dtype``), a cotangent, tangents and keywords for one shape case."""
    sizes, batch = shape_cases(name)[position]
    inputs, params = make_inputs(name, sizes, batch, rng)
    floats = float_positions(name)
    inputs = [a.astype(dtype) if p in floats else a for p, a in enumerate(inputs)]
    shape = np.shape(load_kernel(name, "numpy").forward(*inputs, **params))
    cotangent = rng.standard_normal(shape).astype(dtype)
    tangents = [rng.standard_normal(a.shape).astype(dtype) if p in floats else None for p, a in enumerate(inputs)]
    return inputs, cotangent, tangents, params


def convert(function, values):
    return [None if v is None else function(v) for v in values]


def check(name: str, library: str, calls, to, position: int, dtype, rng) -> None:
    """``calls(cotangent, tangents, *arrays)`` (forward, vjp, jvp, vjp_jvp) on arrays made by ``to``
    give the NumPy kernel's results, as arrays of the inputs' namespace, dtype and device."""
    inputs, cotangent, tangents, params = case(name, position, rng, dtype)
    reference = load_kernel(name, "numpy")
    want = (reference.forward(*inputs, **params), reference.vjp(cotangent, *inputs, **params),
            reference.jvp(tangents, *inputs, **params), reference.vjp_jvp(cotangent, tangents, *inputs, **params))
    arrays = convert(to, inputs)
    xp, device = array_api_compat.array_namespace(arrays[0]), array_api_compat.device(arrays[0])
    got = calls(params)(to(cotangent), convert(to, tangents), *arrays)
    results = [got[0], *(g for g in got[1] if g is not None), got[2], *(g for g in got[3] if g is not None)]
    assert len(results) == 2 + 2 * len(float_positions(name))
    for result in results:
        assert array_api_compat.array_namespace(result) is xp
        assert result.dtype == arrays[0].dtype and array_api_compat.device(result) == device
    tolerance = 1e-10 if dtype == np.float64 else 2e-4
    for what, value, wanted in [("forward", got[0], want[0]), ("jvp", got[2], want[2]),
                                *((f"vjp, gradient of {n}", g, w) for n, g, w in zip(reference.INPUTS, got[1], want[1])),
                                *((f"vjp_jvp, entry of {n}", g, w) for n, g, w in zip(reference.INPUTS, got[3], want[3]))]:
        assert (value is None) == (wanted is None), f"{name} {what} on {library}"
        if value is not None:
            np.testing.assert_allclose(np.asarray(value), wanted, rtol=tolerance, atol=tolerance,
                                       err_msg=f"{name} {what} on {library}")


def eager(name: str):
    kernel = load_kernel(name, "array_api")
    return lambda params: lambda dy, tangents, *arrays: (
        kernel.forward(*arrays, **params), kernel.vjp(dy, *arrays, **params), kernel.jvp(tangents, *arrays, **params),
        kernel.vjp_jvp(dy, tangents, *arrays, **params))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("library", EAGER)
@pytest.mark.parametrize("name", OPERATORS)
def test_kernels_run_on_each_library_as_the_numpy_kernel(name, library, dtype, rng):
    for position in (1, 8):  # one batch dimension at n = 1; two at n = 4
        check(name, library, eager(name), EAGER[library], position, dtype, rng)


@pytest.mark.parametrize("dtype,position", [(np.float64, 8), (np.float32, 1)], ids=["float64", "float32"])
@pytest.mark.parametrize("name", OPERATORS)
def test_kernels_run_on_jax_arrays_under_jit(name, dtype, position, rng):
    """forward, vjp, jvp and vjp_jvp traced by jax.jit (one compilation): no Python branching on values."""
    check(name, "jax", lambda params: jax.jit(eager(name)(params)), jnp.asarray, position, dtype, rng)


def test_a_kernel_runs_on_jax_arrays_op_by_op(rng):
    check("rmsnorm", "jax", eager("rmsnorm"), jnp.asarray, 4, np.float32, rng)


def test_labels_out_of_range_are_an_error_eagerly_and_nan_under_jit():
    """Class labels can be checked only where their values can be read: eagerly a ValueError, as
    the NumPy kernel; traced by jax.jit the loss and its gradient are NaN, never a wrong number."""
    kernel = load_kernel("cross_entropy", "array_api")
    logits, target = jnp.zeros((2, 3)), jnp.asarray([0, 3])
    with pytest.raises(ValueError, match=r"cross_entropy: input 'target' holds values outside 0..2"):
        kernel.forward(logits, target)
    loss = jax.jit(kernel.forward)(logits, target)
    (dlogits, _) = jax.jit(lambda dy, x, t: kernel.vjp(dy, x, t))(jnp.ones(()), logits, target)
    assert np.isnan(float(loss)) and np.all(np.isnan(np.asarray(dlogits)))
    good = jax.jit(kernel.forward)(logits, jnp.asarray([0, 2]))
    assert float(good) == pytest.approx(np.log(3.0))


@pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`:UserWarning")
def test_rmsnorm_vjp_compiles_under_torch_compile_without_graph_breaks(rng):
    """TorchDynamo traces the whole vjp into one graph (fullgraph=True refuses any break); the eager
    backend runs that graph, so the test checks the tracing, not the slow code generation."""
    kernel = load_kernel("rmsnorm", "array_api")
    sys.modules.setdefault(kernel.__name__, kernel)  # Dynamo imports a function's module by name
    inputs, cotangent, _, params = case("rmsnorm", 8, rng)
    compiled = torch.compile(lambda dy, x, gamma, beta: kernel.vjp(dy, x, gamma, beta, **params),
                             fullgraph=True, backend="eager")
    got = compiled(torch.asarray(cotangent), *convert(torch.asarray, inputs))
    want = load_kernel("rmsnorm", "numpy").vjp(cotangent, *inputs, **params)
    for grad, wanted in zip(got, want):
        assert isinstance(grad, torch.Tensor)
        np.testing.assert_allclose(grad.numpy(), wanted, rtol=1e-10, atol=1e-10)


SWIGLU = '''
import sympy as sp
from derive.model import Input, OperatorModel, index, size
from derive.registry import register


@register
def swiglu() -> OperatorModel:
    n = size("n")
    i = index("i", n)
    a, b = Input("a", (n,)), Input("b", (n,))
    return OperatorModel(name="swiglu", summary="a * b * sigmoid(b)", category="gated units",
                         inputs=(a, b), output_indices=(i,), output=a[i] * b[i] / (1 + sp.exp(-b[i])))
'''


def test_kernel_loads_a_builtin_or_renders_a_model_file(tmp_path):
    """derive.kernel: the shipped array_api kernel of a built-in; a model file's rendered and proved
    now; either importable by name (torch.compile imports a function's module)."""
    import derive

    builtin = derive.kernel("rmsnorm")
    assert builtin.__file__.endswith("array_api/rmsnorm.py") and sys.modules[builtin.__name__] is builtin
    (tmp_path / "swiglu.py").write_text(SWIGLU, encoding="utf-8")
    own = derive.kernel(tmp_path / "swiglu.py")
    assert sys.modules[own.__name__] is own and own.INPUTS == ("a", "b")
    a, b = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    torch.testing.assert_close(own.forward(a, b), a * b * torch.sigmoid(b))
    da, db = own.vjp(torch.ones(3, 4, dtype=torch.float64), a, b)
    torch.testing.assert_close(da, b * torch.sigmoid(b))
