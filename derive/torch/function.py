"""``mode="function"``: an operator as a ``torch.autograd.Function`` over the generated ``array_api``
kernel, for forward-mode AD and a double backward recorded to any order.

Its ``backward`` is the kernel's vjp, its ``jvp`` the kernel's jvp, so reverse mode
(``.backward()``, ``torch.autograd.grad``, ``torch.func.grad``/``vjp``) and forward mode
(``torch.func.jvp``, ``torch.autograd.forward_ad``) both run the derived formulas.  With
``create_graph=True`` the backward is itself a node whose derivatives are the kernel's ``jvp`` (by
the cotangent) and ``vjp_jvp`` (by the inputs), and its own backward records the kernel's torch
operations, so a third derivative exists too.  The kernel runs on the tensors' device and dtype.
Gradients are returned only for the inputs that need them (an input may be a Python number or None).
``torch.compile`` does not trace it (a custom ``jvp`` is a graph break): the default mode, ``"op"``
(``derive.torch.ops``), is the one to compile.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch
from torch.autograd import forward_ad

from ..adapters import Signature


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


def autograd_function(kernel: ModuleType, signature: Signature, fixed: dict) -> Callable[..., torch.Tensor]:
    """The operator's function of tensors through ``_Kernel`` (``fixed``: parameters every call gets)."""
    function = type(signature.name, (_Kernel,), {"__doc__": f"{signature.name} through derive's generated kernel."})

    def call(*inputs: Any, **named: Any) -> torch.Tensor:
        arranged, params = signature.bind(inputs, named, fixed)
        refuse_differentiated(signature, params)
        return function.apply(kernel, signature, params, *arranged)  # type: ignore[attr-defined]

    call.__name__ = call.__qualname__ = signature.name
    call.__doc__ = (f"{signature.name}{signature.inputs} through derive's generated kernel (mode='function')."
                    f"\n\n{kernel.__doc__ or ''}")
    call.kernel, call.signature = kernel, signature  # type: ignore[attr-defined]
    return call


def refuse_differentiated(signature: Signature, params: dict) -> None:
    """A TypeError for a keyword parameter autograd would differentiate (a tensor that requires grad,
    or carries a forward-mode tangent): the kernels have derivatives by their inputs only, and its
    gradient would otherwise be silently missing."""
    for name, value in params.items():
        if isinstance(value, torch.Tensor) and ((value.requires_grad and torch.is_grad_enabled())
                                                or forward_ad.unpack_dual(value).tangent is not None):
            raise TypeError(f"{signature.name}: the parameter {name!r} is a tensor that requires grad, but derive's "
                            f"kernels differentiate their inputs only: pass {name}.detach() or a Python number")
