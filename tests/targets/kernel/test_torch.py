"""Every operator against PyTorch, in float64: the forward, the vjp (autograd) and the jvp
(``torch.func.jvp``, with every tangent and each alone).

This is the check of what an operator should compute, independent of the engine's own model: on
several shapes per operator (distinct axis sizes; 0, 1 and 2 batch dimensions), every layout and
every non-default parameter (each ``axis`` and ``keepdims``, gelu's ``approximate``, leaky_relu's
slope, a non-default ``eps``, causal attention, group_norm's ``num_groups``), optional inputs given
and omitted, broadcasting (size-1 axes in either input, 0-d inputs) and inputs that are numerically
hard. torch is part of the test extra, so these tests always run.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import OPERATORS
from helpers.kernels import float_positions, load_kernel
from helpers.torch_cases import CALLS, Case, broadcast_variants, optional_variants, parameter_variants, shape_sweep

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


CASES = [case for name in OPERATORS
         for case in (*shape_sweep(name), *parameter_variants(name), *optional_variants(name),
                      *broadcast_variants(name))]


def test_every_operator_has_a_torch_counterpart():
    assert set(CALLS) == set(OPERATORS)


def test_every_operator_is_compared_on_several_shapes():
    for name in OPERATORS:
        assert len({tuple(map(str, c.shapes)) for c in CASES if c.name == name}) >= 6, name


def _tensors(arrays: list) -> list:
    return [None if a is None else torch.tensor(a) for a in arrays]


def compare(case: Case, inputs: list, rng: np.random.Generator, target: str, rtol: float = 1e-10) -> None:
    """forward, vjp and jvp (every tangent, then each alone) of the kernel against torch."""
    name, params = case.name, case.params
    kernel, call = load_kernel(name, target), CALLS[name]
    floats = [p for p in float_positions(name) if inputs[p] is not None]
    tensors = _tensors(inputs)
    for p in floats:
        tensors[p].requires_grad_()
    expected = call(*tensors, **params)
    y = kernel.forward(*inputs, **params)
    assert np.shape(y) == tuple(expected.shape), f"{name}: output shape"
    np.testing.assert_allclose(y, expected.detach().numpy(), rtol=rtol, atol=rtol / 100, err_msg=f"{name}: forward")

    cotangent = rng.standard_normal(np.shape(y))
    wanted = torch.autograd.grad(expected, [tensors[p] for p in floats], torch.tensor(cotangent))
    grads = kernel.vjp(cotangent, *inputs, **params)
    assert [p for p, g in enumerate(grads) if g is not None] == floats, f"{name}: which gradients"
    for p, want in zip(floats, wanted):
        assert grads[p].shape == inputs[p].shape, f"{name}: shape of d{kernel.INPUTS[p]}"
        np.testing.assert_allclose(grads[p], want.numpy(), rtol=10 * rtol, atol=rtol / 10,
                                   err_msg=f"{name}: gradient of {kernel.INPUTS[p]}")

    fixed = _tensors(inputs)

    def function(*primals):
        arguments = list(fixed)
        for p, primal in zip(floats, primals):
            arguments[p] = primal
        return call(*arguments, **params)

    tangents = {p: rng.standard_normal(inputs[p].shape) for p in floats}
    for chosen in [floats] + ([[p] for p in floats] if len(floats) > 1 else []):
        ours = kernel.jvp([tangents[p] if p in chosen else None for p in range(len(inputs))], *inputs, **params)
        _, theirs = torch.func.jvp(function, tuple(fixed[p] for p in floats),
                                   tuple(torch.tensor(tangents[p]) if p in chosen else torch.zeros_like(fixed[p])
                                         for p in floats))
        assert np.shape(ours) == tuple(theirs.shape), f"{name}: tangent shape"
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=10 * rtol, atol=rtol / 10,
                                   err_msg=f"{name}: tangent along {[kernel.INPUTS[p] for p in chosen]}")


@pytest.mark.filterwarnings("ignore:Using a target size")  # mse_loss on inputs that broadcast
@pytest.mark.parametrize("case", CASES, ids=[f"{c.name}-{c.label}" for c in CASES])
def test_forward_vjp_and_jvp_match_torch(case, rng, kernel_target):
    compare(case, case.inputs(rng), rng, kernel_target)


HARD = [
    ("softmax", [np.array([[1000.0, 1001.0, 999.0], [-1e4, 0.0, 1e4]])], {}),
    ("log_softmax", [np.array([[1000.0, 1001.0, 999.0], [-1e4, 0.0, 1e4]])], {}),
    ("softmax", [np.array([[1e4, -1e4], [3.0, 1e4], [1e4, 2.0]])], {"axis": 0}),
    ("cross_entropy", [np.array([[1000.0, 1001.0, 999.0], [-1e4, 0.0, 1e4]]), np.array([1, 0])], {}),
    ("sigmoid", [np.array([-1e3, -50.0, 0.0, 50.0, 1e3])], {}),
    ("softplus", [np.array([-1e3, -50.0, 0.0, 50.0, 1e3])], {}),
    ("silu", [np.array([-1e3, -50.0, 0.0, 50.0, 1e3])], {}),
    ("layernorm", [1e4 + np.arange(12.0).reshape(2, 6) % 5, None, None], {}),
    ("relu", [np.array([-1.0, 0.0, 2.0])], {}),
    ("leaky_relu", [np.array([-1.0, 0.0, 2.0])], {}),
]


@pytest.mark.parametrize("name,inputs,params", HARD, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(HARD)])
def test_numerically_hard_inputs_match_torch(name, inputs, params, rng, kernel_target):
    """Logits of 1e4, saturating activations, means of 1e4, kinks at 0 (relu'(0) = 0)."""
    compare(Case(name, [None if a is None else a.shape for a in inputs], params), inputs, rng, kernel_target, rtol=1e-9)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_with_large_scores_matches_torch(causal, rng, kernel_target):
    q, k, v = 100 * rng.standard_normal((2, 3, 4)), 100 * rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 2))
    compare(Case("scaled_dot_product_attention", [q.shape, k.shape, v.shape], {"causal": causal}), [q, k, v], rng,
            kernel_target, rtol=1e-8)
