"""PyTorch CPU autograd as a reference, when torch is importable (the optional ``bench`` extra).

``autograd(op, inputs, params)`` returns a forward callable and a backward callable that runs
``torch.autograd.grad`` on one recorded forward graph (PyTorch's backward uses the statistics
its forward saved); both share memory with the NumPy inputs.  ``double_backward`` times PyTorch's
second order the way a user gets it: ``grad(..., create_graph=True)`` then ``grad`` of the
gradients along tangents (by the Hessian's symmetry, what a kernel's ``vjp_jvp`` computes).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

FORWARDS: dict[str, Callable] = {
    "rmsnorm": lambda F, x, gamma, beta, eps: F.rms_norm(x, (x.shape[-1],), gamma, eps) + beta,
    "layernorm": lambda F, x, gamma, beta, eps: F.layer_norm(x, (x.shape[-1],), gamma, beta, eps),
    "softmax": lambda F, x, axis: F.softmax(x, dim=axis),
    "log_softmax": lambda F, x, axis: F.log_softmax(x, dim=axis),
    "batchnorm": lambda F, x, gamma, beta, eps: F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps),
    "matmul": lambda F, a, b: a @ b,
    "group_norm": lambda F, x, gamma, beta, num_groups, eps: F.group_norm(x, num_groups, gamma, beta, eps),
}


def torch_module():
    """The torch module, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def autograd(op: str, inputs: list[np.ndarray], params: dict, dy: np.ndarray):
    """(forward, backward) callables for ``op`` or None when torch or the op is unavailable."""
    torch = torch_module()
    if torch is None or op not in FORWARDS:
        return None
    F = torch.nn.functional
    tensors = [torch.from_numpy(a).requires_grad_() for a in inputs]
    cotangent = torch.from_numpy(dy)
    formula = FORWARDS[op]

    def forward():
        with torch.no_grad():
            return formula(F, *tensors, **params)

    recorded = formula(F, *tensors, **params)

    def backward():
        return torch.autograd.grad(recorded, tensors, cotangent, retain_graph=True)

    return forward, backward


def double_backward(op: str, inputs: list[np.ndarray], params: dict, dy: np.ndarray,
                    tangents: list[np.ndarray]) -> Callable | None:
    """A callable running PyTorch's double backward for ``op`` (None when torch or the op is
    unavailable): the gradients by ``grad(create_graph=True)``, then the gradient of their inner
    product with ``tangents`` by every input (an input that does not reach it gets None)."""
    torch = torch_module()
    if torch is None or op not in FORWARDS:
        return None
    F = torch.nn.functional
    tensors = [torch.from_numpy(a).requires_grad_() for a in inputs]
    cotangent, outer = torch.from_numpy(dy), [torch.from_numpy(t) for t in tangents]
    recorded = FORWARDS[op](F, *tensors, **params)

    def second():
        grads = torch.autograd.grad(recorded, tensors, cotangent, retain_graph=True, create_graph=True)
        pairs = [(g, t) for g, t in zip(grads, outer) if g.requires_grad]
        return torch.autograd.grad([g for g, _ in pairs], tensors, [t for _, t in pairs],
                                   retain_graph=True, allow_unused=True)

    return second


def describe() -> dict:
    torch = torch_module()
    if torch is None:
        return {"torch": None}
    return {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}
