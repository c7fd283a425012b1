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

import functools
import itertools
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from conftest import (
    OPERATORS,
    float_positions,
    load_kernel,
    make_inputs,
    model_of,
    random_values,
    shape_cases,
    user_shape,
)

F = torch.nn.functional
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _cross_entropy(logits, target):
    """Our cross_entropy(logits[..., N, C], target[..., N]) is the mean over N per batch entry:
    torch's with its classes on axis 1 and reduction="none", then that mean."""
    if logits.ndim == 2:
        return F.cross_entropy(logits, target)
    flat = logits.reshape(-1, *logits.shape[-2:]).transpose(1, 2)
    losses = F.cross_entropy(flat, target.reshape(-1, target.shape[-1]), reduction="none")
    return losses.mean(dim=-1).reshape(logits.shape[:-2])


def _plus(y, beta):
    return y if beta is None else y + beta


def _ones(gamma, x, beta):
    """gamma, or ones where it is omitted but beta is not: torch 2.13's group_norm backward fails
    ("tensor does not have a device") without a weight but with a bias; a weight of ones means the same."""
    return torch.ones(x.shape[1], dtype=x.dtype) if gamma is None and beta is not None else gamma


CALLS = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
    "sin": torch.sin, "cos": torch.cos, "tanh": torch.tanh, "exp": torch.exp, "log": torch.log,
    "relu": torch.relu,
    "leaky_relu": lambda x, negative_slope=0.01: F.leaky_relu(x, negative_slope),
    "sigmoid": torch.sigmoid,
    "silu": F.silu,
    "softplus": F.softplus,
    "gelu": lambda x, approximate="none": F.gelu(x, approximate=approximate),
    "reduce_mean": lambda x, axis=-1, keepdims=False: torch.mean(x, dim=axis, keepdim=keepdims),
    "softmax": lambda x, axis=-1: torch.softmax(x, dim=axis),
    "log_softmax": lambda x, axis=-1: torch.log_softmax(x, dim=axis),
    "rmsnorm": lambda x, g, b, eps=1e-6: _plus(F.rms_norm(x, (x.shape[-1],), g, eps), b),
    "layernorm": lambda x, g, b, eps=1e-5: F.layer_norm(x, (x.shape[-1],), g, b, eps),
    "batchnorm": lambda x, g, b, eps=1e-5: F.batch_norm(x, None, None, g, b, training=True, eps=eps),
    "group_norm": lambda x, g, b, num_groups, eps=1e-5: F.group_norm(x, num_groups, _ones(g, x, b), b, eps),
    "matmul": torch.matmul,
    "cross_entropy": _cross_entropy,
    "mse_loss": F.mse_loss,
    "scaled_dot_product_attention":
        lambda q, k, v, causal=False: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
}
"""torch's call for each operator; a parameter left out takes torch's default (rms_norm's eps, whose
torch default depends on the dtype, is the one the README documents)."""


@dataclass
class Case:
    """One comparison: the operator, the shape of each input (None: omitted), the keywords."""

    name: str
    shapes: list
    params: dict = field(default_factory=dict)
    label: str = ""

    def inputs(self, rng: np.random.Generator) -> list:
        """Random inputs of these shapes; class labels (cross_entropy's target) below the logits' C."""
        model = model_of(self.name)
        return [None if shape is None else
                random_values(shape, inp.domain, rng, upper=self.shapes[0][-1] if inp.domain == "index" else 0)
                for inp, shape in zip(model.inputs, self.shapes)]


def _shapes(name: str, sizes: dict, batch: tuple) -> list:
    rng = np.random.default_rng(0)  # only the shapes are kept
    return [a.shape for a in make_inputs(name, sizes, batch, rng)[0]]


def _required(name: str, sizes: dict) -> dict:
    return {"num_groups": sizes["G"]} if name == "group_norm" else {}


def shape_sweep(name: str) -> list[Case]:
    """Default parameters on every shape case: n = 1, 3, 4 (distinct per axis), 0, 1, 2 batch dims."""
    cases = []
    for sizes, batch in shape_cases(name):
        if name == "batchnorm" and sizes["N"] * int(np.prod(batch)) == 1:
            continue  # torch refuses a training batch norm over one value per channel
        label = "x".join(map(str, sizes.values())) + f"-batch{batch}"
        cases.append(Case(name, _shapes(name, sizes, batch), _required(name, sizes), label))
    if model_of(name).layout.kind == "elementwise":  # 0-d inputs
        cases.append(Case(name, [()] * len(model_of(name).inputs), {}, "0-d"))
    return cases


def parameter_variants(name: str) -> list[Case]:
    """Every non-default parameter, on a 3-D input with distinct axis sizes."""
    model = model_of(name)
    sizes, batch = shape_cases(name)[-1]
    shapes, required = _shapes(name, sizes, batch), _required(name, sizes)
    variants = []
    for param in model.params:
        if param.choices:
            variants += [{param.name: value} for value in param.choices if value != param.default]
        elif isinstance(param.default, float):
            variants.append({param.name: 0.25})  # eps, negative_slope: far from the default
    if model.layout.kind == "axis":
        ndim = len(shapes[0])
        keepdims = (False, True) if model.layout.keepdims else (None,)
        variants += [{"axis": axis} | ({} if keep is None else {"keepdims": keep})
                     for axis in range(-ndim, ndim) for keep in keepdims]
    if name == "group_norm":
        channels = sizes["G"] * sizes["D"]
        variants += [{"num_groups": 1}, {"num_groups": channels}]
    cases = []
    for params in variants:
        params = {**required, **params}
        label = ",".join(f"{k}={v}" for k, v in params.items())
        cases.append(Case(name, shapes, params, label))
    return cases


def optional_variants(name: str) -> list[Case]:
    """Each optional input (gamma, beta) omitted, alone and together."""
    model = model_of(name)
    optional = [p for p, inp in enumerate(model.inputs) if inp.optional]
    sizes, batch = shape_cases(name)[-1]
    shapes, cases = _shapes(name, sizes, batch), []
    for count in range(1, len(optional) + 1):
        for omitted in itertools.combinations(optional, count):
            label = "without-" + "-".join(model.inputs[p].name for p in omitted)
            cases.append(Case(name, [None if p in omitted else s for p, s in enumerate(shapes)],
                              _required(name, sizes), label))
    return cases


PAIRS = [((2, 3), (1, 3)), ((1, 3), (2, 3)), ((2, 1), (1, 3)), ((3, 1, 2), (4, 1)),
         ((2, 3), (3,)), ((), (2, 3)), ((2, 3), ())]
"""Shapes of two inputs that broadcast: size-1 axes in either input, fewer axes, 0-d."""


def broadcast_variants(name: str) -> list[Case]:
    """Binary elementwise (and flattened) operators on PAIRS; batch dimensions that broadcast
    ((2, 1) against (3,)) for the operators whose core axes are the trailing ones."""
    model = model_of(name)
    floats = [inp for inp in model.inputs if inp.domain != "index" and not inp.optional]
    if len(floats) != len(model.inputs) or len(floats) < 2:
        return []
    if model.layout.kind in ("elementwise", "flatten"):
        return [Case(name, list(pair), {}, f"{pair[0]}-with-{pair[1]}") for pair in PAIRS]
    if model.layout.kind != "last":
        return []
    sizes, _ = shape_cases(name)[-1]
    batches = [(2, 1), (3,)] + [(2, 3)] * (len(model.inputs) - 2)
    shapes = [batch + user_shape(model, inp, sizes, (), p)
              for p, (inp, batch) in enumerate(zip(model.inputs, batches))]
    return [Case(name, shapes, {}, "batch-" + "-".join(map(str, batches)))]


CASES = [case for name in OPERATORS
         for case in (*shape_sweep(name), *parameter_variants(name), *optional_variants(name),
                      *broadcast_variants(name))]


def test_every_operator_has_a_torch_counterpart():
    assert set(CALLS) == set(OPERATORS)


def test_every_operator_is_compared_on_several_shapes():
    for name in OPERATORS:
        assert len({tuple(map(str, c.shapes)) for c in CASES if c.name == name}) >= 6, name


kernel_of = functools.cache(load_kernel)


def _tensors(arrays: list) -> list:
    return [None if a is None else torch.tensor(a) for a in arrays]


def compare(case: Case, inputs: list, rng: np.random.Generator, target: str, rtol: float = 1e-10) -> None:
    """forward, vjp and jvp (every tangent, then each alone) of the kernel against torch."""
    name, params = case.name, case.params
    kernel, call = kernel_of(name, target), CALLS[name]
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
