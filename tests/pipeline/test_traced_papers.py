"""Operators from recent papers, written in NumPy as their papers write them (tests/models/papers.py),
traced and generated with no hand edit: every Python target's forward, vjp, jvp and vjp_jvp agree with
PyTorch's autograd in float64 (vjp_jvp: the derivative of PyTorch's vjp along the tangents).  Dynamic
Tanh's alpha, ScaleNorm's g and the softmax's log-temperature are learnable scalars (``alpha=()``), the
very functions whose other keyword parameters are parameters.

Each operator is rendered once for the NumPy and Array API targets (proved, no render cache: a CI
run's is cold anyway); the numba target compiles each function on first call (1-2 s each), so it
runs for NUMBA_PAPERS (the richest: two axes, reductions, the shift) always and for every operator
with DERIVE_NUMBA_ALL=1 (as the kernel battery does; all thirteen pass)."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import MODELS

import derive
from derive.model.files import load_traced

PAPERS = MODELS / "papers.py"
N, C = 5, 4

CASES = {  # name: (shapes, PyTorch's forward (inputs, params), params to call with)
    "mish": ({"x": ("n",)}, lambda x: F.mish(x), {}),
    "swiglu": ({"a": ("n",), "b": ("n",)}, lambda a, b: F.silu(a) * b, {}),
    "geglu": ({"a": ("n",), "b": ("n",)}, lambda a, b: F.gelu(a) * b, {}),
    "dynamic_tanh": ({"x": ("n",), "gamma": ("n",), "beta": ("n",), "alpha": ()},
                     lambda x, gamma, beta, alpha: gamma * torch.tanh(alpha * x) + beta, {}),
    "scalenorm": ({"x": ("n",), "g": ()}, lambda x, g, eps: g * x / torch.sqrt((x * x).sum(-1, keepdim=True) + eps),
                  {"eps": 1e-5}),
    "focal_loss": ({"logits": ("n",), "targets": ("n",)},
                   lambda z, t, gamma: torchvision_focal(z, t, gamma), {"gamma": 1.5}),
    "temperature_softmax": ({"x": ("n",), "log_scale": ()},
                            lambda x, log_scale: torch.softmax(x * torch.exp(log_scale), -1), {}),
    "squared_relu": ({"x": ("n",)}, lambda x: torch.relu(x) ** 2, {}),
    "snake": ({"x": ("n",), "alpha": ("n",)}, lambda x, alpha: x + torch.sin(alpha * x) ** 2 / alpha, {}),
    "smooth_l1": ({"a": ("n",), "b": ("n",)}, lambda a, b, delta: F.smooth_l1_loss(a, b, beta=delta),
                  {"delta": 0.7}),
    "soft_cross_entropy": ({"logits": ("N", "C"), "targets": ("N", "C")},
                           lambda z, t: F.cross_entropy(z, t), {}),
    "softcap": ({"x": ("n",)}, lambda x, cap: cap * torch.tanh(x / cap), {"cap": 2.5}),
    "squareplus": ({"x": ("n",)}, lambda x, b: (x + torch.sqrt(x * x + b)) / 2, {"b": 3.0}),
}
NUMBA_PAPERS = ("soft_cross_entropy",)


def torchvision_focal(z: torch.Tensor, t: torch.Tensor, gamma: float) -> torch.Tensor:
    """torchvision.ops.sigmoid_focal_loss (alpha < 0: unweighted) for hard targets, mean reduction."""
    p = torch.sigmoid(z)
    ce = F.binary_cross_entropy_with_logits(z, (t > 0.5).to(z.dtype), reduction="none")
    p_t = torch.where(t > 0.5, p, 1 - p)
    return (ce * (1 - p_t) ** gamma).mean()


@functools.cache
def kernels(name: str) -> dict:
    model = load_traced(PAPERS, name, CASES[name][0])
    files = derive.render(model, ["numpy", "array_api"])
    return {target: _module(files, target, name) for target in ("numpy", "array_api")}


@functools.cache
def numba_kernel(name: str):
    model = load_traced(PAPERS, name, CASES[name][0])
    return _module(derive.render(model, ["numba"]), "numba", name)


def _module(files: dict, target: str, name: str):
    folder = Path(tempfile.mkdtemp(prefix=f"derive-paper-{target}-"))
    path = folder / f"{name}.py"
    path.write_text(files[f"{target}/{name}.py"], encoding="utf-8")
    return derive.load_kernel(path)


LOSSES = ("focal_loss", "smooth_l1", "soft_cross_entropy")
"""A mean over every entry: called without batch dimensions (a traced model's batch dimensions lead,
so a batch of rows would get one loss per row)."""


def inputs_of(name: str, rng: np.random.Generator) -> list[np.ndarray]:
    shapes = CASES[name][0]
    sizes = {"n": N, "N": 3, "C": C}
    batch = () if name in LOSSES else (2,)
    arrays = [rng.standard_normal((batch if shapes[i] else ()) + tuple(sizes[a] for a in shapes[i])) for i in shapes]
    if name == "focal_loss":
        arrays[1] = (rng.random(arrays[1].shape) > 0.5).astype(float)  # hard labels, as the loss is used
    if name == "soft_cross_entropy":
        arrays[1] = np.exp(arrays[1]) / np.exp(arrays[1]).sum(-1, keepdims=True)  # probability rows
    if name == "snake":
        arrays[1] = np.abs(arrays[1][0]) + 0.5  # a frequency per channel, nonzero, broadcast over the batch
    if name in ("swiglu", "geglu"):
        arrays[1] = arrays[1][0]  # broadcast against the batch
    return arrays


def torch_derivatives(name: str, arrays: list, cotangent: np.ndarray, tangents: list, params: dict):
    """PyTorch's forward, vjp, jvp and vjp_jvp (the vjp differentiated along the tangents) in float64."""
    forward = CASES[name][1]
    xs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = forward(*xs, **params)
    dy = torch.tensor(cotangent)
    found = torch.autograd.grad(y, xs, dy, create_graph=True, allow_unused=True)  # labels: no gradient
    grads = [torch.zeros_like(x) if g is None else g for g, x in zip(found, xs)]
    ts = [torch.tensor(t) for t in tangents]
    live = [k for k, g in enumerate(grads) if g.requires_grad]  # a gradient constant in the inputs has none
    second = [None] * len(xs)
    if live:
        found = torch.autograd.grad([grads[k] for k in live], xs, [ts[k] for k in live], allow_unused=True)
        second = list(found)
    _, jvp = torch.func.jvp(lambda *v: forward(*v, **params), tuple(torch.tensor(a) for a in arrays), tuple(ts))
    return (y.detach().numpy(), [g.detach().numpy() for g in grads], jvp.numpy(),
            [np.zeros_like(a) if s is None else s.numpy() for s, a in zip(second, arrays)])


def check(name: str, kernel) -> None:
    rng = np.random.default_rng(11)
    arrays = inputs_of(name, rng)
    params = CASES[name][2]
    shape = np.shape(CASES[name][1](*[torch.tensor(a) for a in arrays], **params))
    cotangent = rng.standard_normal(shape)
    tangents = [rng.standard_normal(a.shape) for a in arrays]
    y, grads, jvp, second = torch_derivatives(name, arrays, cotangent, tangents, params)
    close = functools.partial(np.testing.assert_allclose, rtol=1e-9, atol=1e-11)
    close(kernel.forward(*arrays, **params), y)
    for got, want in zip(kernel.vjp(cotangent, *arrays, **params), grads, strict=True):
        close(got, want)
    close(kernel.jvp(tuple(tangents), *arrays, **params), jvp)
    for got, want in zip(kernel.vjp_jvp(cotangent, tuple(tangents), *arrays, **params), second, strict=True):
        close(got, want)


@pytest.mark.parametrize("target", ["numpy", "array_api"])
@pytest.mark.parametrize("name", CASES)
def test_traced_paper_operator_agrees_with_pytorch(name, target):
    check(name, kernels(name)[target])


NUMBA = CASES if os.environ.get("DERIVE_NUMBA_ALL") else NUMBA_PAPERS


@pytest.mark.parametrize("paper", NUMBA)
def test_traced_paper_operator_agrees_with_pytorch_compiled_by_numba(paper):
    check(paper, numba_kernel(paper))
