"""``operator`` and ``function``: an operator's function of tensors, in either mode (``"op"``,
custom ops; ``"function"``, an autograd.Function), its inputs and parameters checked and put in the
form the mode takes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch.autograd import forward_ad

from ..adapters import Signature, array_api_kernel
from .function import autograd_function, refuse_differentiated
from .ops import operator_ops, param_types

__all__ = ["MODES", "function", "operator"]

MODES = ("op", "function")


def operator(name_or_model_file: str | Path, operator: str | None = None, *, mode: str = "op",
             **fixed_params: Any) -> Callable[..., torch.Tensor]:
    """A function of tensors computing the operator, whose derivatives are the generated ones.

    ``name_or_model_file``: a built-in operator (``"rmsnorm"``), an installed package's operator, or
    a model file (``"swiglu.py"``; ``operator`` names one of its operators when it has several),
    which is generated (and proved) into derive's cache folder on first use.  ``mode``: ``"op"``
    (custom ops; compiles) or ``"function"`` (forward mode too).  ``fixed_params`` are keyword
    parameters every call gets (a call may override them).  The function takes the inputs in the
    kernel's ``INPUTS`` order, by position or by name (an optional one may be left out or be None),
    and the keyword parameters: ``rmsnorm(x, gamma, eps=1e-5)``, ``rmsnorm(x, beta=b)``.
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not one of {', '.join(map(repr, MODES))}")
    kernel, signature = array_api_kernel(name_or_model_file, operator)
    return _build(kernel, signature, signature.check_params(fixed_params), mode)


def function(kernel: ModuleType, name: str, *, mode: str = "op", **fixed_params: Any) -> Callable[..., torch.Tensor]:
    """``operator``'s function for a kernel module already loaded (an ``array_api`` kernel, e.g.
    ``derive.load_kernel("my_kernels/array_api/swiglu.py")``); ``name`` is its operator's name."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not one of {', '.join(map(repr, MODES))}")
    signature = Signature.of(kernel, name)
    return _build(kernel, signature, signature.check_params(fixed_params), mode)


def _build(kernel: ModuleType, signature: Signature, fixed: dict, mode: str) -> Callable[..., torch.Tensor]:
    if mode == "function":
        return autograd_function(kernel, signature, fixed)
    ops = operator_ops(kernel, signature)
    kinds = param_types(signature)
    forward_mode = autograd_function(kernel, signature, fixed)

    def call(*inputs: Any, **named: Any) -> torch.Tensor:
        arranged, params = signature.bind(inputs, named, fixed)
        refuse_differentiated(signature, params)
        if _has_tangent(arranged):  # custom ops have no forward mode: the autograd.Function's jvp
            return forward_mode(*inputs, **named)
        output, _residuals = ops.forward(*_as_tensors(arranged), **_as_values({**signature.params, **params}, kinds))
        return output

    call.__name__ = call.__qualname__ = signature.name
    call.__doc__ = f"{signature.name}{signature.inputs} through derive's custom op.\n\n{kernel.__doc__ or ''}"
    call.kernel, call.signature, call.ops = kernel, signature, ops  # type: ignore[attr-defined]
    return call


def _has_tangent(arranged: list) -> bool:
    """Whether an input carries a forward-mode tangent (``torch.func.jvp``, ``forward_ad``)."""
    return any(isinstance(a, torch.Tensor) and forward_ad.unpack_dual(a).tangent is not None for a in arranged)


def _as_tensors(arranged: list) -> list:
    """The inputs as the ops take them: a Python number a 0-d tensor in the dtype and on the device
    of the first tensor among them (``mul(x, 2.0)``), None as it is."""
    like = next(a for a in arranged if isinstance(a, torch.Tensor))
    return [torch.tensor(a, dtype=like.dtype, device=like.device) if isinstance(a, (int, float)) else a
            for a in arranged]


def _as_values(params: dict, kinds: dict[str, str]) -> dict:
    """The keyword parameters as the ops' schema has them: a number of the formula a float (a 0-d
    tensor that requires no grad, as ``mode="function"`` takes it, by its value)."""
    return {name: float(value) if kinds[name] == "float" and value is not None else value
            for name, value in params.items()}
