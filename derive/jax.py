"""JAX transformations through the generated kernels: ``operator(name_or_model_file)``.

    rmsnorm = derive.jax.operator("rmsnorm")                # or operator("my_op.py"), a model file
    y = rmsnorm(x, gamma, beta, eps=1e-6)                   # jax arrays in, a jax array out
    jax.grad(lambda x: rmsnorm(x, gamma).sum())(x)          # reverse mode: the generated vjp

The function runs the generated ``array_api`` kernel (see ``derive.adapters``) on JAX arrays.  By
default (``mode="vjp"``) it is a ``jax.custom_vjp`` whose forward saves the residuals the kernel
chooses (``forward(..., residuals=True)``: per-row statistics, or the output) and whose backward is
the kernel's vjp reading them: reverse mode
(``jax.grad``, ``jax.vjp``) runs the derived formula, and that backward is itself a ``custom_vjp``
whose rule is the kernel's jvp and vjp_jvp, so a gradient of a gradient runs the derived second
order; forward mode is not available (JAX's rule for ``custom_vjp``).  With ``mode="jvp"`` it is a
``jax.custom_jvp`` whose rule is the kernel's jvp: forward mode (``jax.jvp``, ``jax.jacfwd``) runs
the derived formula, and reverse mode is JAX's transpose of it (the jvp is linear in the tangents).
Both work under ``jax.jit`` and ``jax.vmap``.

Keyword parameters that select the formula or an axis (``axis``, ``keepdims``, ``approximate``,
``num_groups``, ``causal``) are static: Python values fixed when the function is traced; a traced
one is a TypeError saying to pass it as a Python value or mark it static (``static_argnames``).
A number of the formula (``eps``, ``negative_slope``) may be an array, traced by ``jax.jit`` or
mapped by ``jax.vmap``: it is an operand of the ``custom_vjp``/``custom_jvp``, not differentiated
(the kernels have derivatives by their inputs only; differentiating by it is a TypeError).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

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
        static, values = _split(signature, params)
        key = (_key(static), tuple(values))
        if key not in functions:
            functions[key] = build(kernel, _Operands(signature, static, tuple(values)))
        return functions[key](*(None if a is None else jnp.asarray(a) for a in arranged), *values.values())

    call.__name__ = call.__qualname__ = signature.name
    call.__doc__ = (f"{signature.name}{signature.inputs} through derive's generated kernel ({mode}).\n\n"
                    f"{kernel.__doc__ or ''}")
    call.kernel, call.signature = kernel, signature  # type: ignore[attr-defined]
    return call


def _split(signature: Signature, params: dict) -> tuple[dict, dict]:
    """The parameters fixed when the function is traced (Python values), and those passed to it as
    operands: a number of the formula (``signature.numbers``: eps) given as an array, traced or not.
    A traced parameter that selects the formula or an axis cannot be either: a TypeError names it."""
    static, values = {}, {}
    for name, value in params.items():
        if name in signature.numbers and not isinstance(value, (int, float)):
            values[name] = jnp.asarray(value)
        elif any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(value)):
            raise TypeError(f"{signature.name}: parameter {name!r} is traced (an argument of jax.jit, jax.vmap or "
                            f"a transformation), but it selects the formula or an axis, so it must be a Python value: "
                            f"pass it as one, or mark it static (jax.jit(..., static_argnames=[{name!r}]))")
        else:
            static[name] = value
    return static, values


def _key(params: dict) -> tuple:
    """The static parameters as a cache key (an unhashable value, e.g. a list for ``axis``, by its repr)."""
    items = []
    for name, value in sorted(params.items()):
        try:
            hash(value)
        except TypeError:
            value = ("unhashable", repr(value))
        items.append((name, value))
    return tuple(items)


@dataclass(frozen=True)
class _Operands:
    """How a built function's operands are read: the kernel's inputs (None for an omitted optional
    one), then the values of the parameters ``names``; ``static`` parameters are fixed."""

    signature: Signature
    static: dict
    names: tuple[str, ...]

    def split(self, operands: Sequence) -> tuple[tuple, dict]:
        """The inputs and every keyword parameter of one call."""
        count = len(self.signature.inputs)
        return tuple(operands[:count]), {**self.static, **dict(zip(self.names, operands[count:]))}

    def refuse_differentiated(self, moved: Sequence[bool]) -> None:
        """A TypeError if a parameter operand is differentiated (``moved``: one flag per operand)."""
        for name, flag in zip(self.names, moved[len(self.signature.inputs):]):
            if flag:
                raise TypeError(f"{self.signature.name}: no derivative by the parameter {name!r} (derive's kernels "
                                f"differentiate their inputs only): keep it fixed, e.g. jax.lax.stop_gradient({name})")

    def primals(self, primals: Sequence) -> tuple:
        """The values of a ``custom_vjp``'s primals (``symbolic_zeros``: each has ``value`` and
        ``perturbed``; an omitted input is None), a differentiated parameter refused."""
        self.refuse_differentiated([p is not None and p.perturbed for p in primals])
        return tuple(None if p is None else p.value for p in primals)

    def no_cotangents(self) -> tuple:
        return (None,) * len(self.names)


def _with_vjp(kernel: ModuleType, spec: _Operands) -> Callable:
    """A ``jax.custom_vjp`` of the operands (see ``_Operands``)."""

    @jax.custom_vjp
    def function(*operands):
        inputs, params = spec.split(operands)
        return kernel.forward(*inputs, **params)

    def forward(*primals):
        operands = spec.primals(primals)
        inputs, params = spec.split(operands)
        output, saved = kernel.forward(*inputs, residuals=True, **params)
        return output, (operands, saved)

    gradients = _gradients(kernel, spec)

    def backward(residuals, cotangent):
        operands, saved = residuals
        inputs, _ = spec.split(operands)
        if isinstance(cotangent, SymbolicZero):
            return (None,) * len(operands)
        grads = gradients(jnp.asarray(cotangent), saved, *operands)
        return (*(_cotangent(g, a) for g, a in zip(grads, inputs)), *spec.no_cotangents())

    function.defvjp(forward, backward, symbolic_zeros=True)
    return function


def _gradients(kernel: ModuleType, spec: _Operands) -> Callable:
    """The kernel's vjp as a ``jax.custom_vjp`` of (cotangent, *operands): differentiating a gradient
    (``jax.grad`` of ``jax.grad``, ``jax.hessian``'s reverse part) runs derived formulas too.  The
    vjp is linear in the cotangent, so its derivative by the cotangent along outer cotangents g is
    the kernel's jvp along g; by the inputs it is the Hessian of sum(cotangent * forward) times g
    (symmetric), the kernel's vjp_jvp along g."""
    signature = spec.signature

    @jax.custom_vjp
    def gradients(cotangent, saved, *operands):
        inputs, params = spec.split(operands)
        return tuple(kernel.vjp(cotangent, *inputs, residuals=saved, **params))

    def forward(cotangent, saved, *primals):
        operands = spec.primals(primals)
        inputs, params = spec.split(operands)
        saved = jax.tree_util.tree_map(lambda p: p.value, saved, is_leaf=lambda p: hasattr(p, "perturbed"))
        grads = tuple(kernel.vjp(cotangent.value, *inputs, residuals=saved, **params))
        return grads, (cotangent.value, saved, operands)

    def backward(residuals, outer):
        cotangent, saved, operands = residuals
        inputs, params = spec.split(operands)
        tangents = [_cotangent(g, a) if name in signature.differentiable else None
                    for name, g, a in zip(signature.inputs, outer, inputs)]
        # the rule is the whole derivative by the inputs (the residuals' share included): none by them
        unmoved = jax.tree_util.tree_map(jnp.zeros_like, saved)
        if all(t is None for t in tangents):
            return (None, unmoved, *(None for _ in operands))
        by_cotangent = kernel.jvp(tangents, *inputs, residuals=saved, **params).astype(cotangent.dtype)
        by_inputs = kernel.vjp_jvp(cotangent, tangents, *inputs, **params)
        return (by_cotangent, unmoved, *(_cotangent(g, a) for g, a in zip(by_inputs, inputs)),
                *spec.no_cotangents())

    gradients.defvjp(forward, backward, symbolic_zeros=True)
    return gradients


def _cotangent(gradient: Any, primal: Any) -> Any:
    """The gradient for JAX (or an outer cotangent for the kernel, which may come as a NumPy array):
    None (a zero) where there is none (or a symbolic zero) or the input is not floating (labels), a
    JAX array in the input's own dtype otherwise (the kernel's is the promotion of all inputs)."""
    if gradient is None or isinstance(gradient, SymbolicZero) or primal is None \
            or not jnp.issubdtype(primal.dtype, jnp.floating):
        return None
    return jnp.asarray(gradient, dtype=primal.dtype)


def _with_jvp(kernel: ModuleType, spec: _Operands) -> Callable:
    """A ``jax.custom_jvp`` of the operands (see ``_Operands``) whose rule is the kernel's jvp;
    unperturbed inputs come as symbolic zeros, which the kernel skips (None)."""
    signature = spec.signature

    @jax.custom_jvp
    def function(*operands):
        inputs, params = spec.split(operands)
        return kernel.forward(*inputs, **params)

    def rule(primals, tangents):
        zero = [isinstance(t, SymbolicZero) or t is None for t in tangents]
        spec.refuse_differentiated([not z for z in zero])
        inputs, params = spec.split(primals)
        moved = [None if z or name not in signature.differentiable else jnp.asarray(t)
                 for name, t, z in zip(signature.inputs, tangents, zero)]
        output = kernel.forward(*inputs, **params)
        if all(t is None for t in moved):
            return output, jnp.zeros_like(output)
        return output, kernel.jvp(moved, *inputs, **params)

    function.defjvp(rule, symbolic_zeros=True)
    return function
