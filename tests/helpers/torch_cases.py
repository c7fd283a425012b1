"""PyTorch's call for each operator (``CALLS``) and the cases the kernels meet it on: every shape
case, every non-default parameter, optional inputs omitted, inputs that broadcast.  The first-order
battery (targets/kernel/test_torch.py) runs them all; the second-order one and the adapters' a part."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import torch

from helpers.kernels import make_inputs, model_of, random_values, shape_cases, user_shape

F = torch.nn.functional


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
