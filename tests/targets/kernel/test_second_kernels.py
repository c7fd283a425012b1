"""Every generated kernel's ``vjp_jvp`` (the derivative of its vjp along tangents, the cotangent fixed):
against float64 central differences of the generated ``vjp``, against PyTorch's double backward,
and its contract (None tangents, the vjp's and jvp's errors, ``wrt``, float32).

The oracle (the expanded model's Hessian by ``sympy.diff``) checks it at every generation
(``prove._check_vjp_jvp``, refused when wrong: tests/proof/test_prove.py); the memory bound is in
test_memory.py.  Shapes are few and small: the first-order battery covers the layouts.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import OPERATORS, finite_differences
from helpers.kernels import float_positions, load_kernel, make_inputs, model_of, param_cases, shape_cases
from helpers.torch_cases import CALLS, broadcast_variants, optional_variants, parameter_variants, shape_sweep

SHAPES = (0, 4, -1)
"""Of ``shape_cases``: n = 1 without batch, n = 3 with one batch axis, n = 4 with two."""
CASES = [(name, *shape_cases(name)[s], params) for name in OPERATORS for s in SHAPES for params in param_cases(name)
         if not (name == "batchnorm" and s == 0)]
"""batchnorm at N = 1 without batch normalises one value per channel: its vjp is 0 exactly, and
vjp_jvp's terms (of size eps^-1.5 ~ 3e7) cancel to a rounding residue (PyTorch refuses the case)."""
IDS = [f"{name}-{'x'.join(map(str, sizes.values()))}-batch{batch}" + "".join(f"-{k}={v}" for k, v in params.items())
       for name, sizes, batch, params in CASES]


TORCH_CASES = [case for name in OPERATORS
               for case in ([shape_sweep(name)[s] for s in SHAPES] + parameter_variants(name)
                            + optional_variants(name) + broadcast_variants(name))]
"""The first-order torch battery's cases (test_torch.py), three shapes of its shape sweep."""


def setup(name, sizes, batch, params, rng, target, dtype=np.float64):
    kernel = load_kernel(name, target)
    inputs, required = make_inputs(name, sizes, batch, rng, dtype)
    params = {**required, **params}
    cotangent = rng.standard_normal(np.shape(kernel.forward(*inputs, **params))).astype(dtype)
    return kernel, inputs, params, cotangent


def differences(kernel, cotangent, tangents, inputs, params) -> list:
    """d vjp(cotangent, inputs + h tangents)[a] / dh at h = 0, for each input a (central, float64)."""
    step = finite_differences.STEP
    moved = [kernel.vjp(cotangent, *[a if t is None else a + sign * step * t for a, t in zip(inputs, tangents)],
                        **params) for sign in (1, -1)]
    return [None if plus is None else (plus - minus) / (2 * step) for plus, minus in zip(*moved)]


def tangent_sets(name, inputs, rng):
    """Every given float input's tangent together, then each alone."""
    floats = [p for p in float_positions(name) if inputs[p] is not None]
    full = [rng.standard_normal(a.shape) if p in floats else None for p, a in enumerate(inputs)]
    alone = [[t if p == q else None for q, t in enumerate(full)] for p in floats] if len(floats) > 1 else []
    return [full, *alone]


@pytest.mark.parametrize("name,sizes,batch,params", CASES, ids=IDS)
def test_vjp_jvp_matches_finite_differences_of_the_vjp(name, sizes, batch, params, rng, kernel_target):
    kernel, inputs, params, cotangent = setup(name, sizes, batch, params, rng, kernel_target)
    for tangents in tangent_sets(name, inputs, rng):
        got = kernel.vjp_jvp(cotangent, tangents, *inputs, **params)
        expected = differences(kernel, cotangent, tangents, inputs, params)
        assert len(got) == len(inputs)
        for position, (value, want) in enumerate(zip(got, expected)):
            label = f"{name}: entry of {kernel.INPUTS[position]} along {[t is not None for t in tangents]}"
            if want is None:
                assert value is None, label
                continue
            assert value.shape == inputs[position].shape and value.dtype == np.float64, label
            scale = max(1.0, float(np.abs(want).max()))
            np.testing.assert_allclose(value, want, rtol=1e-5, atol=1e-6 * scale, err_msg=label)


def torch_vjp_jvp(case, inputs, cotangent, tangents) -> list:
    """PyTorch's double backward: g = grad(y, inputs, dy, create_graph=True); by the symmetry of the
    Hessian of L = <dy, y>, the derivative of g_a along the tangents is grad_a of sum_b <g_b, t_b>."""
    floats = [p for p in float_positions(case.name) if inputs[p] is not None]
    tensors = [None if a is None else torch.tensor(a) for a in inputs]
    for p in floats:
        tensors[p].requires_grad_()
    y = CALLS[case.name](*_defaults(case.name, tensors), **case.params)
    grads = torch.autograd.grad(y, [tensors[p] for p in floats], torch.tensor(cotangent), create_graph=True)
    inner = sum((g * torch.tensor(tangents[p])).sum() for g, p in zip(grads, floats) if tangents[p] is not None)
    result = [None] * len(inputs)
    second = torch.autograd.grad(inner, [tensors[p] for p in floats], allow_unused=True) \
        if torch.is_tensor(inner) and inner.requires_grad else [None] * len(floats)
    for p, h in zip(floats, second):
        result[p] = np.zeros(inputs[p].shape) if h is None else h.numpy()
    return result


def _defaults(name: str, tensors: list) -> list:
    """An omitted gamma beside a given beta as the constant it stands for (ones): torch 2.13's
    double backward of layer_norm and batch_norm fails without a weight but with a bias."""
    model = model_of(name)
    given = next((t for inp, t in zip(model.inputs, tensors) if inp.optional and t is not None), None)
    return [torch.full(given.shape, float(inp.default), dtype=given.dtype) if t is None and inp.optional
            and given is not None else t for inp, t in zip(model.inputs, tensors)]


@pytest.mark.filterwarnings("ignore:Using a target size")  # mse_loss on inputs that broadcast
@pytest.mark.parametrize("case", TORCH_CASES, ids=[f"{c.name}-{c.label}" for c in TORCH_CASES])
def test_vjp_jvp_matches_torch_double_backward(case, rng, kernel_target):
    """The first-order torch battery's cases (layouts, parameters, optional inputs omitted,
    broadcasting; three shapes), every tangent at once and each alone, in float64."""
    kernel, inputs = load_kernel(case.name, kernel_target), case.inputs(rng)
    cotangent = rng.standard_normal(np.shape(kernel.forward(*inputs, **case.params)))
    for tangents in tangent_sets(case.name, inputs, rng):
        got = kernel.vjp_jvp(cotangent, tangents, *inputs, **case.params)
        for p, (value, want) in enumerate(zip(got, torch_vjp_jvp(case, inputs, cotangent, tangents))):
            label = f"{case.name}: entry of {kernel.INPUTS[p]} along {[t is not None for t in tangents]}"
            if want is None:
                assert value is None, label
                continue
            np.testing.assert_allclose(value, want, rtol=1e-9, atol=1e-10 * max(1.0, float(np.abs(want).max())),
                                       err_msg=label)


def _layernorm_case(rng, target):
    name = "layernorm"
    sizes, batch = shape_cases(name)[-1]
    return setup(name, sizes, batch, {}, rng, target)


def test_none_tangents_give_zeros_and_absent_inputs_none(rng, kernel_target):
    kernel, inputs, params, cotangent = _layernorm_case(rng, kernel_target)
    x, gamma, _ = inputs
    zeros = kernel.vjp_jvp(cotangent, (None, None, None), *inputs)
    assert all(z.shape == a.shape and not z.any() for z, a in zip(zeros, inputs))
    dot_x = rng.standard_normal(x.shape)
    alone = kernel.vjp_jvp(cotangent, (dot_x, None, None), x, gamma, None)
    assert alone[2] is None and alone[0].any() and alone[1].any()  # beta omitted: no entry
    only_x = kernel.vjp_jvp(cotangent, (dot_x, None, None), x, gamma, None, wrt="x")
    assert only_x[1] is None and only_x[2] is None
    np.testing.assert_array_equal(only_x[0], alone[0])
    # beta's gradient (dy summed) does not depend on any input: no tangent reaches it
    beta = kernel.vjp_jvp(cotangent, (dot_x, rng.standard_normal(gamma.shape), None), *inputs)[2]
    assert beta.shape == inputs[2].shape and not beta.any()


def test_integer_inputs_get_no_entry(rng, kernel_target):
    name = "cross_entropy"
    sizes, batch = shape_cases(name)[-1]
    kernel, inputs, params, cotangent = setup(name, sizes, batch, {}, rng, kernel_target)
    got = kernel.vjp_jvp(cotangent, (rng.standard_normal(inputs[0].shape), None), *inputs)
    assert got[1] is None and got[0].shape == inputs[0].shape


def _message(call) -> str:
    with pytest.raises((ValueError, TypeError)) as caught:
        call()
    return str(caught.value)


def test_bad_arguments_get_the_vjp_and_jvp_messages(rng, kernel_target):
    name = "cross_entropy"
    sizes, batch = shape_cases(name)[-1]
    kernel, inputs, params, cotangent = setup(name, sizes, batch, {}, rng, kernel_target)
    logits, target = inputs
    good = (rng.standard_normal(logits.shape), None)
    for tangents in [(good[0],), (good[0][..., :1], None), (good[0], np.ones(target.shape))]:
        expected = _message(lambda: kernel.jvp(tangents, *inputs))
        assert _message(lambda: kernel.vjp_jvp(cotangent, tangents, *inputs)) == expected
    for cotangent_, wrt in [(np.ones(7), None), (cotangent, "target"), (cotangent.astype(int), None)]:
        expected = _message(lambda: kernel.vjp(cotangent_, *inputs, wrt=wrt))
        assert _message(lambda: kernel.vjp_jvp(cotangent_, good, *inputs, wrt=wrt)) == expected


@pytest.mark.parametrize("name", OPERATORS)
def test_vjp_jvp_float32_in_float32_out(name, rng, kernel_target):
    sizes, batch = shape_cases(name)[-1]
    kernel, inputs, params, cotangent = setup(name, sizes, batch, {}, rng, kernel_target)
    floats = float_positions(name)
    tangents = [rng.standard_normal(a.shape) if p in floats else None for p, a in enumerate(inputs)]
    low = [a.astype(np.float32) if p in floats else a for p, a in enumerate(inputs)]
    got32 = kernel.vjp_jvp(cotangent.astype(np.float32), [None if t is None else t.astype(np.float32) for t in tangents],
                           *low, **params)
    got64 = kernel.vjp_jvp(cotangent, tangents, *inputs, **params)
    for p in floats:
        assert got32[p].dtype == np.float32
        scale = max(1.0, float(np.abs(got64[p]).max()))
        np.testing.assert_allclose(got32[p], got64[p], rtol=2e-3, atol=2e-4 * scale, err_msg=f"{name}: {kernel.INPUTS[p]}")


@pytest.mark.parametrize("name", ["layernorm", "scaled_dot_product_attention"])
def test_the_oracles_hessian_vector_product_is_its_hessian_contracted(name, rng):
    """The proof's ``hessian_vector`` (the gradient differentiated along a direction) against the
    oracle's full Hessian (every second derivative) contracted with the cotangent and the tangent."""
    from derive.proof.kernel import size_cases
    from derive.proof.oracle import expanded

    model = model_of(name)
    sizes = size_cases(model)[-1]
    oracle = expanded(model, tuple(sizes.items()))
    arrays = {n: rng.standard_normal((2,) + shape) for n, shape in oracle.in_shapes.items()}
    params = {p.symbol: 0.5 for p in model.params if p.symbol is not None}
    dy = rng.standard_normal((2, int(np.prod(oracle.out_shape))))
    names = [inp.name for inp in model.differentiable_inputs]
    for a, b in [(names[0], names[0]), (names[0], names[1])]:
        t = rng.standard_normal((2, int(np.prod(oracle.in_shapes[b]))))
        full = np.einsum("...o,...oik,...k->...i", dy, oracle.hessian(a, b, arrays, params, (2,)), t)
        np.testing.assert_allclose(oracle.hessian_vector(a, b, arrays, params, dy, t, (2,)), full, rtol=1e-10, atol=1e-12)
        assert np.abs(full).max() > 1e-3
