"""PyTorch autograd through the generated kernels: ``operator(name_or_model_file)`` and ``nn.Module``
norms (``RMSNorm``, ``LayerNorm``, ``GroupNorm``, ``BatchNorm``).

    rmsnorm = derive.torch.operator("rmsnorm")          # or operator("my_op.py"), a model file
    y = rmsnorm(x, gamma, beta, eps=1e-6)               # tensors in, a tensor out
    y.sum().backward()                                  # backward: the generated vjp

The function is a ``torch.autograd.Function`` over the generated ``array_api`` kernel (see
``derive.adapters``): its ``backward`` is the kernel's vjp, its ``jvp`` the kernel's jvp, so reverse
mode (``.backward()``, ``torch.autograd.grad``, ``torch.func.grad``/``vjp``) and forward mode
(``torch.func.jvp``, ``torch.autograd.forward_ad``) both run the derived formulas.  With
``create_graph=True`` the backward is itself a node whose derivatives are the kernel's ``jvp`` (by
the cotangent) and ``vjp_jvp`` (by the inputs), so a double backward (``gradgradcheck``, gradient
penalties, Hessian-vector products) runs the derived second order too.  The kernel runs
on the tensors' device and dtype.  Gradients are returned only for the inputs that need them (an
input may be a Python number or None).  Keyword parameters are not differentiated: a tensor one
that requires grad is a TypeError, not a gradient silently missing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch.autograd import forward_ad

from .adapters import Signature, array_api_kernel

__all__ = ["BatchNorm", "GroupNorm", "LayerNorm", "RMSNorm", "function", "operator"]


class _Kernel(torch.autograd.Function):
    """One call of a generated kernel: ``apply(kernel, signature, params, *inputs)``."""

    @staticmethod
    def forward(kernel: ModuleType, signature: Signature, params: dict, *inputs: Any) -> torch.Tensor:
        output = kernel.forward(*_plain(inputs), **params)
        # a view of the kernel's own intermediate (matmul's reshaped product) would need a tangent
        # that is a view of the same layout; the output is made a tensor of its own instead
        return output.clone() if output._base is not None else output

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        kernel, signature, params, *arrays = inputs
        ctx.kernel, ctx.signature, ctx.params = kernel, signature, params
        tensors = _placed(ctx, arrays)
        ctx.save_for_backward(*tensors)
        ctx.save_for_forward(*tensors)

    @staticmethod
    def backward(ctx: Any, cotangent: torch.Tensor) -> tuple:
        needed = ctx.needs_input_grad[3:]
        if not any(needed):
            return (None,) * (3 + len(needed))
        wrt = tuple(name for name, need in zip(ctx.signature.inputs, needed)
                    if need and name in ctx.signature.differentiable)
        inputs = _inputs(ctx)
        if torch.is_grad_enabled():  # create_graph=True: the backward is a node whose derivative is derived too
            grads = iter(_Backward.apply(ctx.kernel, ctx.signature, ctx.params, wrt, cotangent, *inputs))
            grads = [next(grads) if name in wrt else None for name in ctx.signature.inputs]
        else:
            grads = ctx.kernel.vjp(cotangent, *inputs, wrt=list(wrt), **ctx.params)  # only the gradients asked for
        return (None, None, None, *(g if need else None for g, need in zip(grads, needed)))

    @staticmethod
    def jvp(ctx: Any, *tangents: Any) -> torch.Tensor:
        signature = ctx.signature
        moved = [t if name in signature.differentiable else None
                 for name, t in zip(signature.inputs, tangents[3:])]
        return ctx.kernel.jvp(moved, *_inputs(ctx), **ctx.params)


class _Backward(torch.autograd.Function):
    """The kernel's vjp as a differentiable node: ``apply(kernel, signature, params, wrt, cotangent,
    *inputs)`` returns the gradients of the inputs named in ``wrt``.

    Its own backward takes cotangents g_a for those gradients.  The vjp is linear in the cotangent,
    so the gradient by the cotangent is the kernel's ``jvp`` along (g_a); by the inputs it is the
    Hessian of sum(cotangent * forward) times (g_a), which (the Hessian being symmetric) is the
    kernel's ``vjp_jvp`` along (g_a): a double backward runs derived formulas, not a replay."""

    @staticmethod
    def forward(kernel: ModuleType, signature: Signature, params: dict, wrt: tuple, cotangent: torch.Tensor,
                *inputs: Any) -> tuple:
        grads = kernel.vjp(cotangent, *_plain(inputs), wrt=list(wrt), **params)
        return tuple(g for name, g in zip(signature.inputs, grads) if name in wrt)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        kernel, signature, params, wrt, cotangent, *arrays = inputs
        ctx.kernel, ctx.signature, ctx.params, ctx.wrt = kernel, signature, params, wrt
        ctx.save_for_backward(cotangent, *_placed(ctx, arrays))
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx: Any, *grad_outputs: Any) -> tuple:
        cotangent, *tensors = ctx.saved_tensors
        inputs = _inputs(ctx, tensors)
        outer = dict(zip(ctx.wrt, grad_outputs))
        tangents = [outer.get(name) for name in ctx.signature.inputs]
        needed = ctx.needs_input_grad[4:]
        if all(t is None for t in tangents) or not any(needed):
            return (None,) * len(ctx.needs_input_grad)
        by_cotangent = ctx.kernel.jvp(tangents, *inputs, **ctx.params) if needed[0] else None
        by_inputs = ctx.kernel.vjp_jvp(cotangent, tangents, *inputs, **ctx.params) \
            if any(needed[1:]) else (None,) * len(inputs)
        return (None, None, None, None, by_cotangent,
                *(g if need else None for g, need in zip(by_inputs, needed[1:])))


def _placed(ctx: Any, arrays: list) -> list:
    """The tensors among a call's inputs, to save; ``ctx`` keeps where they go among the others."""
    ctx.given = [a is not None for a in arrays]
    ctx.others = [None if isinstance(a, torch.Tensor) else a for a in arrays]  # None, Python numbers
    return [a for a in arrays if isinstance(a, torch.Tensor)]


def _inputs(ctx: Any, tensors: Any = None) -> list:
    """The call's inputs: the saved tensors (``ctx.saved_tensors`` unless given) back in their
    places among the other arguments."""
    saved = iter(ctx.saved_tensors if tensors is None else tensors)
    return _plain([next(saved) if other is None and not_none else other
                   for other, not_none in zip(ctx.others, ctx.given)])


def _plain(arrays) -> list:
    """The tensors detached where autograd is off (a forward, a backward without ``create_graph``),
    which changes nothing there (and keeps the kernel's ``asarray`` calls from warning that
    ``requires_grad`` is inherited); with autograd on (a double backward's own backward under
    ``create_graph=True``) the kernel's operations are recorded, so a third derivative exists too."""
    if torch.is_grad_enabled():
        return list(arrays)
    return [a.detach() if isinstance(a, torch.Tensor) else a for a in arrays]


def operator(name_or_model_file: str | Path, operator: str | None = None,
             **fixed_params: Any) -> Callable[..., torch.Tensor]:
    """A function of tensors computing the operator, whose derivatives are the generated vjp and jvp.

    ``name_or_model_file``: a built-in operator (``"rmsnorm"``), an installed package's operator, or
    a model file (``"swiglu.py"``; ``operator`` names one of its operators when it has several),
    which is generated (and proved) into derive's cache folder on first use.  ``fixed_params`` are
    keyword parameters every call gets (a call may override them).  The function takes the inputs in
    the kernel's ``INPUTS`` order, by position or by name (an optional one may be left out or be
    None), and the keyword parameters: ``rmsnorm(x, gamma, eps=1e-5)``, ``rmsnorm(x, beta=b)``.
    """
    kernel, signature = array_api_kernel(name_or_model_file, operator)
    return _function(kernel, signature, signature.check_params(fixed_params))


def function(kernel: ModuleType, name: str, **fixed_params: Any) -> Callable[..., torch.Tensor]:
    """``operator``'s function for a kernel module already loaded (an ``array_api`` kernel, e.g.
    ``derive.load_kernel("my_kernels/array_api/swiglu.py")``); ``name`` is its operator's name."""
    signature = Signature.of(kernel, name)
    return _function(kernel, signature, signature.check_params(fixed_params))


def _function(kernel: ModuleType, signature: Signature, fixed: dict) -> Callable[..., torch.Tensor]:
    doc = f"{signature.name} through derive's generated kernel."
    function: Any = type(signature.name, (_Kernel,), {"__doc__": doc})

    def call(*inputs: Any, **named: Any) -> torch.Tensor:
        arranged, params = signature.bind(inputs, named, fixed)
        _refuse_differentiated(signature, params)
        return function.apply(kernel, signature, params, *arranged)

    call.__name__ = call.__qualname__ = signature.name
    call.__doc__ = f"{signature.name}{signature.inputs} through derive's generated kernel.\n\n{kernel.__doc__ or ''}"
    call.kernel, call.signature = kernel, signature  # type: ignore[attr-defined]
    return call


def _refuse_differentiated(signature: Signature, params: dict) -> None:
    """A TypeError for a keyword parameter autograd would differentiate (a tensor that requires grad,
    or carries a forward-mode tangent): the kernels have derivatives by their inputs only, and its
    gradient would otherwise be silently missing."""
    for name, value in params.items():
        if isinstance(value, torch.Tensor) and ((value.requires_grad and torch.is_grad_enabled())
                                                or forward_ad.unpack_dual(value).tangent is not None):
            raise TypeError(f"{signature.name}: the parameter {name!r} is a tensor that requires grad, but derive's "
                            f"kernels differentiate their inputs only: pass {name}.detach() or a Python number")


# -- torch.nn modules: the norms, with the parameter shapes of torch.nn's --------------------------


def _shape(normalized_shape: int | tuple[int, ...] | list[int]) -> tuple[int, ...]:
    return (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)


class _LastAxesNorm(torch.nn.Module):
    """A norm over the trailing ``normalized_shape`` axes: they are flattened into the kernel's one
    feature axis (and the weight and bias with them), so ``normalized_shape`` may have several axes."""

    op = ""
    default_eps: float | None = None

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float | None = None,
                 elementwise_affine: bool = True, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        self.normalized_shape = _shape(normalized_shape)
        self.eps = self.default_eps if eps is None else eps
        self.elementwise_affine = elementwise_affine
        factory = {"device": device, "dtype": dtype}
        self.weight = torch.nn.Parameter(torch.ones(self.normalized_shape, **factory)) if elementwise_affine else None
        self.bias = torch.nn.Parameter(torch.zeros(self.normalized_shape, **factory)) \
            if elementwise_affine and bias else None
        self._operator = operator(self.op)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        count = len(self.normalized_shape)
        if tuple(x.shape[x.ndim - count:]) != self.normalized_shape:
            raise ValueError(f"{type(self).__name__}: input of shape {tuple(x.shape)} does not end in "
                             f"normalized_shape {self.normalized_shape}")
        flat = x.reshape(*x.shape[:x.ndim - count], math.prod(self.normalized_shape))
        weight, bias = (None if p is None else p.reshape(-1) for p in (self.weight, self.bias))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        return self._operator(flat, weight, bias, eps=eps).reshape(x.shape)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, " \
               f"bias={self.bias is not None}"


class RMSNorm(_LastAxesNorm):
    """``torch.nn.RMSNorm`` through derive's generated rmsnorm, plus a bias (beta, as derive's model has):
    x / sqrt(mean(x²) + eps) * weight + bias over the trailing ``normalized_shape`` axes.

    ``weight`` has ``torch.nn.RMSNorm``'s shape; ``bias`` (zeros at first, so the output is
    torch's) has the same shape; ``bias=False`` leaves it out, giving exactly ``torch.nn.RMSNorm``'s
    parameters.  ``eps=None`` (the default, as in torch) is ``torch.finfo(x.dtype).eps``."""

    op = "rmsnorm"


class LayerNorm(_LastAxesNorm):
    """``torch.nn.LayerNorm`` through derive's generated layernorm: the same arguments (``eps=1e-5``,
    ``elementwise_affine``, ``bias``) and the same ``weight`` and ``bias`` shapes."""

    op = "layernorm"
    default_eps = 1e-5

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(normalized_shape, eps, elementwise_affine, bias, device, dtype)


class _ChannelNorm(torch.nn.Module):
    """A norm of x[N, C, *spatial] with per-channel ``weight`` and ``bias`` of shape (C,)."""

    op = ""

    def __init__(self, num_channels: int, eps: float, affine: bool, device, dtype) -> None:
        super().__init__()
        self.eps, self.affine = eps, affine
        factory = {"device": device, "dtype": dtype}
        self.weight = torch.nn.Parameter(torch.ones(num_channels, **factory)) if affine else None
        self.bias = torch.nn.Parameter(torch.zeros(num_channels, **factory)) if affine else None
        self._operator = operator(self.op)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._operator(x, self.weight, self.bias, eps=self.eps, **self._params())

    def _params(self) -> dict:
        return {}


class GroupNorm(_ChannelNorm):
    """``torch.nn.GroupNorm(num_groups, num_channels, eps=1e-5, affine=True)`` through derive's
    generated group_norm: x[N, C, *spatial] normalised over each group of C / num_groups channels
    and the spatial axes; ``weight`` and ``bias`` of shape (C,)."""

    op = "group_norm"

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 device=None, dtype=None) -> None:
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) is not divisible by num_groups ({num_groups})")
        self.num_groups, self.num_channels = num_groups, num_channels
        super().__init__(num_channels, eps, affine, device, dtype)

    def _params(self) -> dict:
        return {"num_groups": self.num_groups}

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class BatchNorm(_ChannelNorm):
    """Batch normalisation through derive's generated batchnorm: x[N, C, *spatial] (as
    ``torch.nn.BatchNorm1d``, ``2d`` and ``3d``) normalised per channel with the statistics of the
    batch, always: like torch's with ``track_running_stats=False``, in training and in eval mode.
    Running statistics are not tracked (derive's model is the training-mode formula).  ``weight``
    and ``bias`` have shape (C,), as torch's."""

    op = "batchnorm"

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True, device=None, dtype=None) -> None:
        self.num_features = num_features
        super().__init__(num_features, eps, affine, device, dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, affine={self.affine}, track_running_stats=False"
