"""An extra oracle: every operator's forward and vjp against PyTorch's CPU autograd.

torch is in the test extra, so this always runs (a missing torch is an error, not a skip).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import OPERATORS, float_positions, load_kernel, make_inputs, param_cases, shape_cases

F = torch.nn.functional

CALLS = {
    "add": lambda a, b: torch.add(a, b),
    "sub": lambda a, b: torch.sub(a, b),
    "mul": lambda a, b: torch.mul(a, b),
    "div": lambda a, b: torch.div(a, b),
    "sin": torch.sin, "cos": torch.cos, "tanh": torch.tanh, "exp": torch.exp, "log": torch.log,
    "relu": torch.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.01),
    "sigmoid": torch.sigmoid,
    "silu": F.silu,
    "softplus": F.softplus,
    "gelu": lambda x, approximate="none": F.gelu(x, approximate=approximate),
    "reduce_mean": lambda x: torch.mean(x, dim=-1),
    "softmax": lambda x: torch.softmax(x, dim=-1),
    "log_softmax": lambda x: torch.log_softmax(x, dim=-1),
    "rmsnorm": lambda x, g, b: F.rms_norm(x, (x.shape[-1],), g, eps=1e-6) + b,
    "layernorm": lambda x, g, b: F.layer_norm(x, (x.shape[-1],), g, b, eps=1e-5),
    "batchnorm": lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True, eps=1e-5),
    "group_norm": lambda x, g, b, num_groups: F.group_norm(x, num_groups, g, b, eps=1e-5),
    "matmul": torch.matmul,
    "cross_entropy": lambda logits, target: F.cross_entropy(logits, target),
    "mse_loss": F.mse_loss,
    "scaled_dot_product_attention": lambda q, k, v, causal=False: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
}


def test_every_operator_has_a_torch_counterpart():
    assert set(CALLS) == set(OPERATORS)


CASES = [(name, params) for name in OPERATORS for params in param_cases(name)]


@pytest.mark.parametrize("name,params", CASES, ids=[n + "".join(f"-{k}={v}" for k, v in p.items()) for n, p in CASES])
def test_forward_and_vjp_match_torch(name, params, rng):
    kernel = load_kernel(name)
    sizes, batch = shape_cases(name)[-1]
    if name == "cross_entropy":
        batch = ()  # torch's cross_entropy takes (N, C) logits
    inputs, required = make_inputs(name, sizes, batch, rng)
    params = {**required, **params}
    tensors = [torch.tensor(a, requires_grad=p in float_positions(name)) for p, a in enumerate(inputs)]
    expected = CALLS[name](*tensors, **params)
    y = kernel.forward(*inputs, **params)
    np.testing.assert_allclose(y, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    cotangent = rng.standard_normal(np.shape(y))
    expected.backward(torch.tensor(cotangent))
    grads = kernel.vjp(cotangent, *inputs, **params)
    for p in float_positions(name):
        np.testing.assert_allclose(grads[p], tensors[p].grad.numpy(), rtol=1e-9, atol=1e-11,
                                   err_msg=f"{name}: gradient of {kernel.INPUTS[p]}")


@pytest.mark.parametrize("name,slope", [("relu", 0.0), ("leaky_relu", 0.01)])
def test_kink_gradient_follows_torch(name, slope):
    kernel = load_kernel(name)
    x = np.zeros(3)
    (dx,) = kernel.vjp(np.ones(3), x)
    t = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    CALLS[name](t).sum().backward()
    np.testing.assert_array_equal(dx, t.grad.numpy())
    assert dx[0] == slope
