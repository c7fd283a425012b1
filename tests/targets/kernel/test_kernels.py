"""Every generated kernel, every input: forward vs NumPy, vjp and jvp vs float64 central differences."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import OPERATORS, finite_differences, reference
from helpers.kernels import float_positions, load_kernel, make_inputs, model_of, param_cases, random_values, shape_cases

CASES = [(name, sizes, batch, params) for name in OPERATORS for sizes, batch in shape_cases(name)
         for params in param_cases(name)]
IDS = [f"{name}-{'x'.join(map(str, sizes.values()))}-batch{batch}" + "".join(f"-{k}={v}" for k, v in params.items())
       for name, sizes, batch, params in CASES]


def setup(name, sizes, batch, params, rng, kernel_target):
    kernel = load_kernel(name, kernel_target)
    inputs, required = make_inputs(name, sizes, batch, rng)
    return kernel, inputs, {**required, **params}


@pytest.mark.parametrize("name,sizes,batch,params", CASES, ids=IDS)
def test_forward_matches_numpy_reference(name, sizes, batch, params, rng, kernel_target):
    kernel, inputs, params = setup(name, sizes, batch, params, rng, kernel_target)
    expected = getattr(reference, name)(*inputs, **params)
    np.testing.assert_allclose(kernel.forward(*inputs, **params), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,sizes,batch,params", CASES, ids=IDS)
def test_vjp_matches_finite_differences(name, sizes, batch, params, rng, kernel_target):
    kernel, inputs, params = setup(name, sizes, batch, params, rng, kernel_target)
    cotangent = rng.standard_normal(np.shape(kernel.forward(*inputs, **params)))
    grads = kernel.vjp(cotangent, *inputs, **params)
    assert len(grads) == len(inputs)
    for position, (array, grad) in enumerate(zip(inputs, grads)):
        if position not in float_positions(name):
            assert grad is None, f"{name}: integer input {kernel.INPUTS[position]} has no gradient"
            continue
        assert grad.shape == array.shape
        expected = finite_differences.vjp(kernel.forward, cotangent, inputs, position, params)
        np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-7,
                                   err_msg=f"{name}: gradient of input {kernel.INPUTS[position]}")


@pytest.mark.parametrize("name,sizes,batch,params", CASES, ids=IDS)
def test_jvp_matches_finite_differences(name, sizes, batch, params, rng, kernel_target):
    kernel, inputs, params = setup(name, sizes, batch, params, rng, kernel_target)
    for position in float_positions(name):
        tangents = [None] * len(inputs)
        tangents[position] = rng.standard_normal(inputs[position].shape)
        expected = finite_differences.jvp(kernel.forward, tangents, inputs, params)
        np.testing.assert_allclose(kernel.jvp(tangents, *inputs, **params), expected, rtol=1e-6, atol=1e-7,
                                   err_msg=f"{name}: tangent of input {kernel.INPUTS[position]}")


BINARY = [name for name in OPERATORS if model_of(name).layout.kind in ("elementwise", "flatten")
          and len(model_of(name).inputs) == 2]
SIZE_ONE = [((2, 3), (1, 3)), ((1, 3), (2, 3)), ((2, 1), (1, 3)), ((3, 1, 2), (4, 1)), ((), (2, 3))]


@pytest.mark.parametrize("shapes", SIZE_ONE, ids=[f"{a}-with-{b}" for a, b in SIZE_ONE])
@pytest.mark.parametrize("name", BINARY)
def test_gradients_of_broadcast_inputs_are_summed_over_their_size_one_axes(name, shapes, rng, kernel_target):
    """An input broadcast along a size-1 axis gets the gradient summed along it, in its own shape."""
    kernel = load_kernel(name, kernel_target)
    model = model_of(name)
    inputs = [random_values(shape, inp.domain, rng) for inp, shape in zip(model.inputs, shapes)]
    cotangent = rng.standard_normal(np.shape(kernel.forward(*inputs)))
    for position, grad in enumerate(kernel.vjp(cotangent, *inputs)):
        assert grad.shape == shapes[position]
        np.testing.assert_allclose(grad, finite_differences.vjp(kernel.forward, cotangent, inputs, position),
                                   rtol=1e-6, atol=1e-8, err_msg=f"{name}: gradient of {kernel.INPUTS[position]}")


@pytest.mark.parametrize("name", OPERATORS)
def test_vjp_and_jvp_are_adjoint(name, rng, kernel_target):
    """<dy, J t> = <J^T dy, t> with every tangent at once."""
    sizes, batch = shape_cases(name)[-1]
    kernel, inputs, params = setup(name, sizes, batch, {}, rng, kernel_target)
    floats = float_positions(name)
    tangents = [rng.standard_normal(a.shape) if p in floats else None for p, a in enumerate(inputs)]
    cotangent = rng.standard_normal(np.shape(kernel.forward(*inputs, **params)))
    left = np.sum(cotangent * kernel.jvp(tangents, *inputs, **params))
    grads = kernel.vjp(cotangent, *inputs, **params)
    right = sum(np.sum(grads[p] * tangents[p]) for p in floats)
    np.testing.assert_allclose(left, right, rtol=1e-10)


@pytest.mark.parametrize("name", OPERATORS)
def test_float32_in_float32_out_close_to_float64(name, rng, kernel_target):
    sizes, batch = shape_cases(name)[-1]
    kernel, inputs64, params = setup(name, sizes, batch, {}, rng, kernel_target)
    floats = float_positions(name)
    inputs32 = [a.astype(np.float32) if p in floats else a for p, a in enumerate(inputs64)]
    y64, y32 = kernel.forward(*inputs64, **params), kernel.forward(*inputs32, **params)
    assert y32.dtype == np.float32 and y64.dtype == np.float64
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-5)
    cotangent = rng.standard_normal(np.shape(y64))
    grads32 = kernel.vjp(cotangent.astype(np.float32), *inputs32, **params)
    grads64 = kernel.vjp(cotangent, *inputs64, **params)
    for p in floats:
        assert grads32[p].dtype == np.float32
        np.testing.assert_allclose(grads32[p], grads64[p], rtol=1e-3, atol=1e-4)
    tangents = [rng.standard_normal(a.shape) if p in floats else None for p, a in enumerate(inputs64)]
    j32 = kernel.jvp([t if t is None else t.astype(np.float32) for t in tangents], *inputs32, **params)
    assert j32.dtype == np.float32
    np.testing.assert_allclose(j32, kernel.jvp(tangents, *inputs64, **params), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", OPERATORS)
def test_optional_inputs_default_and_get_no_gradient(name, rng, kernel_target):
    kernel = load_kernel(name, kernel_target)
    optional = [p for p, n in enumerate(kernel.INPUTS) if n in kernel._OPTIONAL]
    sizes, batch = shape_cases(name)[-1]
    inputs, params = make_inputs(name, sizes, batch, rng)
    omitted = [None if p in optional else a for p, a in enumerate(inputs)]
    if not optional:
        assert kernel._OPTIONAL == []
        return
    cotangent = rng.standard_normal(np.shape(kernel.forward(*inputs, **params)))
    grads = kernel.vjp(cotangent, *omitted, **params)
    assert all(grads[p] is None for p in optional)
    expected = getattr(reference, name)(*omitted, **params)
    np.testing.assert_allclose(kernel.forward(*omitted, **params), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,axis,keepdims", [("softmax", a, False) for a in (0, 1, -1, -2)]
                         + [("log_softmax", a, False) for a in (0, -2)]
                         + [("reduce_mean", a, k) for a in (0, 1, -1) for k in (False, True)])
def test_axis_parameter_moves_the_operator(name, axis, keepdims, rng, kernel_target):
    kernel = load_kernel(name, kernel_target)
    params = {"axis": axis} | ({"keepdims": keepdims} if name == "reduce_mean" else {})
    x = rng.standard_normal((3, 4, 5))
    y = kernel.forward(x, **params)
    np.testing.assert_allclose(y, getattr(reference, name)(x, **params), rtol=1e-12, atol=1e-14)
    dy = rng.standard_normal(y.shape)
    (dx,) = kernel.vjp(dy, x, **params)
    expected = finite_differences.vjp(kernel.forward, dy, [x], 0, params)
    np.testing.assert_allclose(dx, expected, rtol=1e-6, atol=1e-8)
    tangent = rng.standard_normal(x.shape)
    np.testing.assert_allclose(kernel.jvp([tangent], x, **params),
                               finite_differences.jvp(kernel.forward, [tangent], [x], params), rtol=1e-6, atol=1e-8)


def softmax_family_gradient(name: str, x: np.ndarray, dy: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The closed forms of the softmax family's gradient by the logits, from a stable softmax p:
    p (dy - <dy, p>), dy - p sum(dy), and dy (p - onehot(target)) / N for the mean cross-entropy."""
    p = reference.softmax(x)
    if name == "softmax":
        return p * (dy - np.sum(dy * p, axis=-1, keepdims=True))
    if name == "log_softmax":
        return dy - p * np.sum(dy, axis=-1, keepdims=True)
    return dy * (p - np.eye(x.shape[-1])[target]) / x.shape[-2]


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "cross_entropy"])
def test_softmax_family_is_stable_for_large_logits(name, rng, kernel_target):
    kernel = load_kernel(name, kernel_target)
    x = np.array([[1000.0, 1001.0, 999.0], [-1e4, 0.0, 1e4]])
    target = np.array([1, 2])
    inputs = [x] + ([target] if name == "cross_entropy" else [])
    y = kernel.forward(*inputs)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, getattr(reference, name)(*inputs), rtol=1e-12)
    dy = rng.standard_normal(y.shape)  # not ones: softmax's gradient along ones is exactly zero
    (dx, *_) = kernel.vjp(dy, *inputs)
    expected = softmax_family_gradient(name, x, dy, target)
    assert np.any(np.abs(expected) > 1e-3)  # the comparison is not of zeros
    np.testing.assert_allclose(dx, expected, rtol=1e-10, atol=1e-12)


def test_attention_is_stable_for_large_scores(rng, kernel_target):
    kernel = load_kernel("scaled_dot_product_attention", kernel_target)
    q, k, v = 100 * rng.standard_normal((3, 4)), 100 * rng.standard_normal((5, 4)), rng.standard_normal((5, 2))
    for causal in (False, True):
        y = kernel.forward(q, k, v, causal=causal)
        np.testing.assert_allclose(y, reference.scaled_dot_product_attention(q, k, v, causal=causal), rtol=1e-10)
        assert all(np.all(np.isfinite(g)) for g in kernel.vjp(np.ones_like(y), q, k, v, causal=causal))


@pytest.mark.parametrize("name", ["sigmoid", "softplus", "silu"])
def test_saturating_activations_stay_finite_far_out(name, rng, kernel_target):
    kernel = load_kernel(name, kernel_target)
    x = np.array([-1e3, -50.0, 0.0, 50.0, 1e3])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = kernel.forward(x)
        (dx,) = kernel.vjp(np.ones_like(x), x)
    np.testing.assert_allclose(y, getattr(reference, name)(x), rtol=1e-12, atol=1e-300)
    assert np.all(np.isfinite(dx))


def test_log_of_zero_is_minus_infinity_as_in_numpy(kernel_target):
    kernel = load_kernel("log", kernel_target)
    with np.errstate(divide="ignore"):
        assert kernel.forward(np.array([0.0]))[0] == -np.inf


def test_layernorm_and_batchnorm_keep_precision_for_large_means(rng, kernel_target):
    """Two-pass variance: inputs with mean 1e4 still normalise accurately in float32."""
    x = (1e4 + rng.standard_normal((4, 64))).astype(np.float32)
    np.testing.assert_allclose(load_kernel("layernorm", kernel_target).forward(x), reference.layernorm(x.astype(np.float64)), atol=2e-2)
    x = (1e4 + rng.standard_normal((8, 3, 16))).astype(np.float32)
    np.testing.assert_allclose(load_kernel("batchnorm", kernel_target).forward(x), reference.batchnorm(x.astype(np.float64)), atol=2e-2)
    np.testing.assert_allclose(load_kernel("group_norm", kernel_target).forward(x, num_groups=3),
                               reference.group_norm(x.astype(np.float64), num_groups=3), atol=2e-2)


def test_matmul_broadcasts_batch_and_reduces_gradient(rng, kernel_target):
    kernel = load_kernel("matmul", kernel_target)
    a, b = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((5, 6))
    y = kernel.forward(a, b)
    dy = rng.standard_normal(y.shape)
    da, db = kernel.vjp(dy, a, b)
    np.testing.assert_allclose(da, dy @ b.T, rtol=1e-12)
    np.testing.assert_allclose(db, np.einsum("abij,abik->jk", a, dy), rtol=1e-12)


@pytest.mark.parametrize("name,slope", [("relu", 0.0), ("leaky_relu", 0.01)])
def test_kink_takes_the_lower_branch_as_pytorch(name, slope, kernel_target):
    """relu'(0) = 0 and leaky_relu'(0) = negative_slope, PyTorch's convention."""
    (dx,) = load_kernel(name, kernel_target).vjp(np.ones(2), np.zeros(2))
    np.testing.assert_array_equal(dx, [slope, slope])


@pytest.mark.parametrize("name", OPERATORS)
def test_kernels_leave_their_arguments_unchanged(name, rng, kernel_target):
    """In-place updates touch only arrays a call allocated, never an argument."""
    kernel = load_kernel(name, kernel_target)
    sizes, batch = shape_cases(name)[-1]
    inputs, params = make_inputs(name, sizes, batch, rng)
    cotangent = rng.standard_normal(np.shape(kernel.forward(*inputs, **params)))
    floats = float_positions(name)
    tangents = [rng.standard_normal(a.shape) if p in floats else None for p, a in enumerate(inputs)]
    arrays = [*inputs, cotangent, *(t for t in tangents if t is not None)]
    before = [a.copy() for a in arrays]
    kernel.forward(*inputs, **params)
    grads = [g for g in kernel.vjp(cotangent, *inputs, **params) if g is not None]
    kernel.jvp(tangents, *inputs, **params)
    assert all(np.array_equal(a, b) for a, b in zip(arrays, before))
    assert len(grads) == len(floats)


@pytest.mark.parametrize("batch", [(), (2,)], ids=["same-shapes", "batch"])
@pytest.mark.parametrize("name", OPERATORS)
def test_no_result_shares_memory_with_an_argument_or_another_result(name, batch, rng, kernel_target):
    """A caller may update what a kernel returns in place (``da += 1``) and change nothing else: no
    output, gradient or tangent shares memory with an input, the cotangent, a tangent or another
    result. With equal shapes, add's vjp used to return the cotangent itself as both gradients."""
    kernel = load_kernel(name, kernel_target)
    sizes, _ = shape_cases(name)[3]
    inputs, params = make_inputs(name, sizes, batch, rng)
    floats = float_positions(name)
    y = kernel.forward(*inputs, **params)
    cotangent = rng.standard_normal(np.shape(y))
    tangents = [rng.standard_normal(a.shape) if p in floats else None for p, a in enumerate(inputs)]
    alone = [[t if p == chosen else None for p, t in enumerate(tangents)] for chosen in floats]
    results = [y, *(g for g in kernel.vjp(cotangent, *inputs, **params) if g is not None),
               *(kernel.jvp(chosen, *inputs, **params) for chosen in [tangents, *alone])]
    arguments = [*inputs, cotangent, *(t for t in tangents if t is not None)]
    for position, result in enumerate(results):
        shared = [o for o in arguments + results[position + 1:] if np.shares_memory(result, o)]
        assert not shared, f"{name}: result {position} shares memory with {len(shared)} other arrays"
    before = [a.copy() for a in arguments + results]
    for result in results:
        result += 1
    assert all(np.array_equal(a, b) for a, b in zip(arguments, before))
    assert all(np.array_equal(r, b + 1) for r, b in zip(results, before[len(arguments):]))


@pytest.mark.parametrize("name", OPERATORS)
def test_vjp_computes_only_the_gradients_named_in_wrt(name, rng, kernel_target):
    """``wrt`` picks the gradients: each alone equals the same entry of the full call, the others are
    None; a name that is not a differentiable input is a ValueError naming it."""
    kernel = load_kernel(name, kernel_target)
    sizes, batch = shape_cases(name)[4]
    inputs, params = make_inputs(name, sizes, batch, rng)
    cotangent = rng.standard_normal(np.shape(kernel.forward(*inputs, **params)))
    full = kernel.vjp(cotangent, *inputs, **params)
    for position in float_positions(name):
        chosen = kernel.INPUTS[position]
        alone = kernel.vjp(cotangent, *inputs, **params, wrt=[chosen])
        assert [g is not None for g in alone] == [p == position for p in range(len(inputs))], chosen
        np.testing.assert_allclose(alone[position], full[position], rtol=1e-12, atol=1e-14)
    assert all(g is None for g in kernel.vjp(cotangent, *inputs, **params, wrt=()))
    with pytest.raises(ValueError, match=rf"{name}: wrt names 'nothing'"):
        kernel.vjp(cotangent, *inputs, **params, wrt=["nothing"])
