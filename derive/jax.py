"""JAX transformations through the generated kernels: ``operator(name_or_model_file)``.

    rmsnorm = derive.jax.operator("rmsnorm")                # or operator("my_op.py"), a model file
    y = rmsnorm(x, gamma, beta, eps=1e-6)                   # jax arrays in, a jax array out
    jax.grad(lambda x: rmsnorm(x, gamma).sum())(x)          # reverse mode: the generated vjp

The function runs the generated ``array_api`` kernel (see ``derive.adapters``) on JAX arrays.  By
default (``mode="vjp"``) it is a ``jax.custom_vjp`` whose backward is the kernel's vjp: reverse mode
(``jax.grad``, ``jax.vjp``) runs the derived formula, and that backward is itself a ``custom_vjp``
whose rule is the kernel's jvp and vjp_jvp, so a gradient of a gradient runs the derived second
order; forward mode is not available (JAX's rule for ``custom_vjp``).  With ``mode="jvp"`` it is a ``jax.custom_jvp`` whose rule is the kernel's jvp:
forward mode (``jax.jvp``, ``jax.jacfwd``) runs the derived formula, and reverse mode is JAX's
transpose of it (the jvp is linear in the tangents).  Keyword parameters are static: Python values
fixed when the function is traced (they select formulas and axes), never traced arrays.  Both
work under ``jax.jit`` and ``jax.vmap``.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from .adapters import Signature, array_api_kernel

__all__ = ["operator"]

MODES = ("vjp", "jvp")


def operator(name_or_model_file: str | Path, operator: str | None = None, *, mode: str = "vjp",
             **fixed_params: Any) -> Callable[..., jax.Array]:
    """A function of JAX arrays computing the operator, differentiated through the generated kernel.

    ``name_or_model_file``: a built-in operator (``"rmsnorm"``), an installed package's operator, or
    a model file (``"swiglu.py"``; ``operator`` names one of its operators when it has several),
    generated (and proved) into derive's cache folder on first use.  ``mode``: ``"vjp"``
    (``jax.custom_vjp``, reverse mode) or ``"jvp"`` (``jax.custom_jvp``, forward mode, and reverse
    mode by transposition).  ``fixed_params`` are keyword parameters every call gets (a call may
    override them).  The function takes the inputs in the kernel's ``INPUTS`` order, by position or
    by name (an optional one may be left out or be None), and the keyword parameters.
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not one of {', '.join(map(repr, MODES))}")
    kernel, signature = array_api_kernel(name_or_model_file, operator)
    fixed = signature.check_params(fixed_params)
    build = _with_vjp if mode == "vjp" else _with_jvp
    functions: dict[tuple, Callable] = {}

    def call(*inputs: Any, **named: Any) -> jax.Array:
        arranged, params = signature.bind(inputs, named, fixed)
        key = _key(params)
        if key not in functions:
            functions[key] = build(kernel, signature, params)
        return functions[key](*(None if a is None else jnp.asarray(a) for a in arranged))

    call.__name__ = call.__qualname__ = signature.name
    call.__doc__ = f"{signature.name}{signature.inputs} through derive's generated kernel ({mode}).\n\n{kernel.__doc__ or ''}"
    call.kernel, call.signature = kernel, signature
    return call


def _key(params: dict) -> tuple:
    """The parameters as a cache key (an unhashable value, e.g. a list for ``axis``, by its repr)."""
    items = []
    for name, value in sorted(params.items()):
        try:
            hash(value)
        except TypeError:
            value = ("unhashable", repr(value))
        items.append((name, value))
    return tuple(items)


def _with_vjp(kernel: ModuleType, signature: Signature, params: dict) -> Callable:
    """A ``jax.custom_vjp`` of the inputs (None for an omitted optional one), ``params`` fixed."""

    @jax.custom_vjp
    def function(*inputs):
        return kernel.forward(*inputs, **params)

    def forward(*inputs):
        return kernel.forward(*inputs, **params), inputs

    gradients = _gradients(kernel, signature, params)

    def backward(inputs, cotangent):
        grads = gradients(jnp.asarray(cotangent), *inputs)
        return tuple(_cotangent(g, a) for g, a in zip(grads, inputs))

    function.defvjp(forward, backward)
    return function


def _gradients(kernel: ModuleType, signature: Signature, params: dict) -> Callable:
    """The kernel's vjp as a ``jax.custom_vjp`` of (cotangent, *inputs): differentiating a gradient
    (``jax.grad`` of ``jax.grad``, ``jax.hessian``'s reverse part) runs derived formulas too.  The
    vjp is linear in the cotangent, so its derivative by the cotangent along outer cotangents g is
    the kernel's jvp along g; by the inputs it is the Hessian of sum(cotangent * forward) times g
    (symmetric), the kernel's vjp_jvp along g."""

    @jax.custom_vjp
    def gradients(cotangent, *inputs):
        return tuple(kernel.vjp(cotangent, *inputs, **params))

    def forward(cotangent, *inputs):
        return gradients(cotangent, *inputs), (cotangent, inputs)

    def backward(saved, outer):
        cotangent, inputs = saved
        tangents = [_cotangent(g, a) if name in signature.differentiable else None
                    for name, g, a in zip(signature.inputs, outer, inputs)]
        if all(t is None for t in tangents):
            return (None, *(None for _ in inputs))
        by_cotangent = kernel.jvp(tangents, *inputs, **params).astype(cotangent.dtype)
        by_inputs = kernel.vjp_jvp(cotangent, tangents, *inputs, **params)
        return (by_cotangent, *(_cotangent(g, a) for g, a in zip(by_inputs, inputs)))

    gradients.defvjp(forward, backward)
    return gradients


def _cotangent(gradient: Any, primal: Any) -> Any:
    """The gradient for JAX: None (a zero) where there is none or the input is not floating
    (labels), in the input's own dtype otherwise (the kernel's is the promotion of all inputs)."""
    if gradient is None or primal is None or not jnp.issubdtype(primal.dtype, jnp.floating):
        return None
    return gradient.astype(primal.dtype)


def _with_jvp(kernel: ModuleType, signature: Signature, params: dict) -> Callable:
    """A ``jax.custom_jvp`` of the inputs whose rule is the kernel's jvp; unperturbed inputs come as
    symbolic zeros, which the kernel skips (None)."""

    @jax.custom_jvp
    def function(*inputs):
        return kernel.forward(*inputs, **params)

    def rule(primals, tangents):
        moved = [None if isinstance(t, SymbolicZero) or t is None or name not in signature.differentiable else jnp.asarray(t)
                 for name, t in zip(signature.inputs, tangents)]
        output = kernel.forward(*primals, **params)
        if all(t is None for t in moved):
            return output, jnp.zeros_like(output)
        return output, kernel.jvp(moved, *primals, **params)

    function.defjvp(rule, symbolic_zeros=True)
    return function
