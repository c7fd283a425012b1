"""derive's operators as PyTorch custom ops (``torch.library.custom_op``, namespace ``derive``):
``torch.compile`` sees each as one node of its graph (no graph break) and ``torch.library.opcheck``
checks them.  ``operator_ops(kernel, signature)`` registers an operator's four ops once.

The four ops are ``derive::<name>`` (the forward), ``<name>_vjp``, ``<name>_jvp`` and
``<name>_vjp_jvp``.  On CPU tensors of float32 or float64 they run the generated numba kernel
zero-copy (NumPy views of the tensors' memory, made contiguous once where they are not; the
results written into tensors ``torch.empty`` allocated, passed as the kernel's ``out=``); elsewhere
(another device or dtype, numba not installed) the generated ``array_api`` kernel on the tensors
themselves.  The forward's autograd formula is the vjp op; the vjp op's own is the jvp op (by the
cotangent) and the vjp_jvp op (by the inputs), so a double backward runs derived formulas.  The fake (shape-only)
implementations run the ``array_api`` kernel on the compiler's fake tensors, or take the inputs'
shapes for gradients.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from .. import api
from ..adapters import Signature

LIBRARY = "derive"
_NUMBA_DTYPES = (torch.float32, torch.float64)
_PARAM_TYPES = {bool: "bool", int: "int", float: "float", str: "str", type(None): "int?"}
"""A keyword parameter's schema type, from its default's (a default of None: group_norm's num_groups)."""


@dataclass
class OperatorOps:
    """The custom ops of one operator and the kernels behind them."""

    signature: Signature
    array_api: ModuleType
    forward: Any
    vjp: Any
    jvp: Any
    vjp_jvp: Any
    numba: list = field(default_factory=list)
    """The numba kernel, once loaded ([] before; [None] when it cannot be)."""
    shapes: dict = field(default_factory=dict)
    """The forward's output shape by input shapes and parameters (``_output_buffer``)."""


_REGISTERED: dict[str, OperatorOps] = {}


def operator_ops(kernel: ModuleType, signature: Signature) -> OperatorOps:
    """The custom ops of ``kernel`` (an ``array_api`` kernel), registered on first use."""
    if kernel.__name__ not in _REGISTERED:
        _REGISTERED[kernel.__name__] = _register(kernel, signature, _free_name(signature.name))
    return _REGISTERED[kernel.__name__]


def _free_name(name: str) -> str:
    """``name`` as an op name (letters, digits, _), numbered when another kernel already has it."""
    base = re.sub(r"\W", "_", name)
    taken = {ops.forward._name.split("::")[-1] for ops in _REGISTERED.values()}
    candidates = (base, *(f"{base}_{n}" for n in range(2, len(taken) + 3)))
    return next(c for c in candidates if c not in taken)


def param_types(signature: Signature) -> dict[str, str]:
    """Each keyword parameter's schema type: a number of the formula is a float; the others the
    type of their default.  A TypeError for one the schema cannot hold."""
    types = {}
    for param, default in signature.params.items():
        kind = "float" if param in signature.numbers else _PARAM_TYPES.get(type(default))
        if kind is None:
            raise TypeError(f"{signature.name}: the parameter {param!r} (default {default!r}) has no custom op "
                            "type; use derive.torch.operator(..., mode='function')")
        types[param] = kind
    return types


def _schemas(signature: Signature) -> dict[str, str]:
    inputs = ", ".join(f"Tensor{'?' if n in signature.optional else ''} {n}" for n in signature.inputs)
    tangents = ", ".join(f"Tensor? tangent_{n}" for n in signature.inputs)
    params = "".join(f", {kind} {name}" for name, kind in param_types(signature).items())
    keywords = f", *{params}" if params else ""
    return {"forward": f"({inputs}{keywords}) -> (Tensor, Tensor[])",
            "vjp": f"(Tensor cotangent, {inputs}, Tensor[] residuals, *{params}, bool[] wrt) -> Tensor[]",
            "jvp": f"({tangents}, {inputs}{keywords}) -> Tensor",
            "vjp_jvp": f"(Tensor cotangent, {tangents}, {inputs}, *{params}, bool[] wrt) -> Tensor[]"}


def _register(kernel: ModuleType, signature: Signature, name: str) -> OperatorOps:
    schemas = _schemas(signature)
    count = len(signature.inputs)
    holder: dict[str, OperatorOps] = {}

    def forward(*inputs: Any, **params: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
        ops = holder["ops"]
        module, to_kernel, from_kernel = _backend(ops, inputs)
        dtype, saved = _result_dtype(inputs), residual_names(ops, inputs)
        out = _output_buffer(ops, module, inputs, params)
        keywords = {**params, **_out(out)}
        if not saved:
            return _delivered(from_kernel(module.forward(*map(to_kernel, inputs), **keywords)), out, dtype), []
        output, residuals = module.forward(*map(to_kernel, inputs), residuals=True, **keywords)
        return (_delivered(from_kernel(output), out, dtype),
                [_dense(from_kernel(residuals[n]), dtype) for n in saved if n != "y"])

    def forward_fake(*inputs: Any, **params: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
        with _data_checks_ignored():
            shape = kernel.forward(*inputs, **params).shape
        dtype, device, saved = _result_dtype(inputs), _device(inputs), residual_names(holder["ops"], inputs)
        rows = shape[:len(shape) - len(holder["ops"].numba[0]._OUTPUT_AXES)] if saved else ()
        return torch.empty(shape, dtype=dtype, device=device), \
            [torch.empty(rows, dtype=dtype, device=device) for n in saved if n != "y"]

    def vjp(cotangent: torch.Tensor, *arrays: Any, wrt: list[bool], **params: Any) -> list[torch.Tensor]:
        *inputs, residuals = arrays
        module, to_kernel, from_kernel = _backend(holder["ops"], (cotangent, *inputs))
        names = [n for n, want in zip(signature.inputs, wrt) if want]
        if residuals:
            saved = residual_names(holder["ops"], inputs)
            params["residuals"] = {n: to_kernel(r) for n, r in zip(saved, residuals, strict=True)}
        out = _gradient_buffers(holder["ops"], module, inputs, wrt)
        grads = module.vjp(to_kernel(cotangent), *map(to_kernel, inputs), wrt=names, **params, **_out(out))
        return _gradients(grads, inputs, wrt, from_kernel, out)

    def vjp_fake(cotangent: torch.Tensor, *arrays: Any, wrt: list[bool], **params: Any) -> list[torch.Tensor]:
        return [torch.empty(a.shape, dtype=a.dtype, device=a.device) for a, want in zip(arrays[:count], wrt) if want]

    def jvp(*arrays: Any, **params: Any) -> torch.Tensor:
        tangents, inputs = arrays[:count], arrays[count:]
        module, to_kernel, from_kernel = _backend(holder["ops"], arrays)
        out = _output_buffer(holder["ops"], module, inputs, params)
        output = module.jvp([to_kernel(t) for t in tangents], *map(to_kernel, inputs), **params, **_out(out))
        return _delivered(from_kernel(output), out, _result_dtype(inputs))

    def jvp_fake(*arrays: Any, **params: Any) -> torch.Tensor:
        return forward_fake(*arrays[count:], **params)[0]

    def vjp_jvp(cotangent: torch.Tensor, *arrays: Any, wrt: list[bool], **params: Any) -> list[torch.Tensor]:
        tangents, inputs = arrays[:count], arrays[count:]
        module, to_kernel, from_kernel = _backend(holder["ops"], (cotangent, *arrays))
        names = [n for n, want in zip(signature.inputs, wrt) if want]
        out = _gradient_buffers(holder["ops"], module, inputs, wrt)
        grads = module.vjp_jvp(to_kernel(cotangent), [to_kernel(t) for t in tangents], *map(to_kernel, inputs),
                               wrt=names, **params, **_out(out))
        return _gradients(grads, inputs, wrt, from_kernel, out)

    def vjp_jvp_fake(cotangent: torch.Tensor, *arrays: Any, wrt: list[bool], **params: Any) -> list[torch.Tensor]:
        return vjp_fake(cotangent, *arrays[count:], [], wrt=wrt, **params)

    implementations: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
        "forward": (forward, forward_fake), "vjp": (vjp, vjp_fake), "jvp": (jvp, jvp_fake),
        "vjp_jvp": (vjp_jvp, vjp_jvp_fake)}
    defined: dict[str, Any] = {}
    for function, (real, fake) in implementations.items():
        qualname = f"{LIBRARY}::{name}" + ("" if function == "forward" else f"_{function}")
        op = torch.library.custom_op(qualname, real, mutates_args=(), schema=schemas[function])
        op.register_fake(fake)
        defined[function] = op
    ops = holder["ops"] = OperatorOps(signature, kernel, **defined)
    _autograd(ops)
    return ops


def residual_names(ops: OperatorOps, inputs: Sequence) -> tuple[str, ...]:
    """What the forward saves for the backward with these inputs: the numba kernel's ``RESIDUALS``
    (the engine's choice: the output ``y``, per-row statistics), when that kernel runs and each of
    them is the output or one number per row (whose shape the fake implementation knows); none
    otherwise (group_norm's and batchnorm's per-group statistics; the ``array_api`` kernel), and
    the backward recomputes from the inputs.  ``y`` is the forward's output itself."""
    if _backend(ops, inputs)[0] is ops.array_api:
        return ()
    kernel = ops.numba[0]
    names = tuple(getattr(kernel, "RESIDUALS", ()))
    if all(n == "y" or kernel._SAVED_AXES[n] == () for n in names):
        return names
    return ()


def _data_checks_ignored() -> contextlib.AbstractContextManager:
    """Under the compiler's fake tensors: the values a kernel's input checks read (class labels in
    range) are unknown symbols, which only the real call checks; nothing is done elsewhere."""
    mode = torch._guards.detect_fake_mode()
    if mode is None or mode.shape_env is None:
        return contextlib.nullcontext()
    return mode.shape_env.ignore_fresh_unbacked_symbols()


def _result_dtype(inputs: Sequence) -> torch.dtype:
    """The dtype of a forward's output: the promotion of the floating inputs' (NumPy's, as the kernels')."""
    dtypes = [a.dtype for a in inputs if isinstance(a, torch.Tensor) and a.is_floating_point()]
    found = dtypes[0]
    for dtype in dtypes[1:]:
        found = torch.promote_types(found, dtype)
    return found


def _gradients(grads: Sequence, inputs: Sequence, wrt: Sequence[bool], from_kernel,
               out: Sequence | None) -> list[torch.Tensor]:
    """The gradients asked for (``wrt``), each a tensor in its input's dtype, as autograd wants: the
    buffer the kernel wrote it into (``out``), where it had one."""
    buffers = out or (None,) * len(inputs)
    return [_delivered(from_kernel(g), b, a.dtype) for g, a, want, b in zip(grads, inputs, wrt, buffers) if want]


# -- the framework's own allocations, handed to the numba kernel (out=) --------------------------


def _output_buffer(ops: OperatorOps, module: ModuleType, inputs: Sequence, params: dict) -> torch.Tensor | None:
    """A new row-major tensor (``torch.empty``) for the output of the forward or jvp the numba kernel
    writes into; None for the ``array_api`` kernel.  Its shape is found once per input shapes and
    parameters, by the ``array_api`` kernel on meta tensors (no data)."""
    if module is ops.array_api:
        return None
    key = (tuple((tuple(a.shape), a.dtype) if isinstance(a, torch.Tensor) else a for a in inputs),
           tuple(sorted(params.items())))
    if key not in ops.shapes:
        meta = [a.to("meta") if isinstance(a, torch.Tensor) else a for a in inputs]
        ops.shapes[key] = tuple(ops.array_api.forward(*meta, **params).shape)
    return torch.empty(ops.shapes[key], dtype=_result_dtype(inputs))


def _gradient_buffers(ops: OperatorOps, module: ModuleType, inputs: Sequence, wrt: Sequence[bool]) -> list | None:
    """A new tensor like each input whose gradient is wanted, for the numba kernel's vjp or vjp_jvp
    to write into (None where the kernel's result dtype, the inputs' promotion, is not the input's);
    None for the ``array_api`` kernel."""
    if module is ops.array_api:
        return None
    dtype = _result_dtype(inputs)
    return [torch.empty(a.shape, dtype=dtype) if want and isinstance(a, torch.Tensor) and a.dtype == dtype else None
            for a, want in zip(inputs, wrt)]


def _out(out: torch.Tensor | Sequence | None) -> dict[str, Any]:
    """The kernel's ``out=`` for ``out`` (NumPy views of the tensors), or no keyword without buffers."""
    if out is None:
        return {}
    if isinstance(out, torch.Tensor):
        return {"out": out.numpy()}
    return {"out": tuple(None if b is None else b.numpy() for b in out)}


def _delivered(result: torch.Tensor | None, buffer: torch.Tensor | None, dtype: torch.dtype) -> Any:
    """The tensor the kernel wrote ``result`` into (``buffer``), or ``result`` as ``_dense`` makes it."""
    return buffer if buffer is not None else None if result is None else _dense(result, dtype)


def _dense(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``tensor`` in ``dtype`` and row-major (a kernel may return a transposed view), as the fake
    implementations promise; a copy only where it is not already."""
    return tensor.to(dtype).contiguous()


def _device(inputs: Sequence) -> torch.device:
    return next(a.device for a in inputs if isinstance(a, torch.Tensor))


def _backend(ops: OperatorOps, arrays: Sequence) -> tuple[ModuleType, Any, Any]:
    """The kernel for these tensors, and the conversions of a tensor to its array and back."""
    tensors = [a for a in arrays if isinstance(a, torch.Tensor)]
    cpu = all(t.device.type == "cpu" for t in tensors)
    floats = all(t.dtype in _NUMBA_DTYPES for t in tensors if t.is_floating_point())
    numba = _numba(ops) if cpu and floats else None
    if numba is None:
        return ops.array_api, _same, _same
    return numba, _to_numpy, _from_numpy


def _numba(ops: OperatorOps) -> ModuleType | None:
    """The numba kernel of a built-in operator (a shipped ``array_api`` kernel's sibling), loaded
    once; None for another (a model file's) or without numba."""
    if not ops.numba:
        builtin = Path(ops.array_api.__file__ or "").parent == api.generated_folder() / "array_api"
        try:
            ops.numba.append(api.kernel(ops.signature.name, "numba") if builtin else None)
        except ImportError:  # numba not installed: the array_api kernel everywhere
            ops.numba.append(None)
    return ops.numba[0]


def _same(value: Any) -> Any:
    return value


def _to_numpy(value: Any) -> Any:
    return value.detach().contiguous().numpy() if isinstance(value, torch.Tensor) else value


def _from_numpy(value: Any) -> torch.Tensor:
    return torch.as_tensor(value)  # the array's memory (a NumPy scalar: a 0-d tensor)


def _autograd(ops: OperatorOps) -> None:
    """The forward's derivative is the vjp op; the vjp op's is the jvp and vjp_jvp ops."""
    signature = ops.signature

    count = len(signature.inputs)

    def save_forward(ctx: Any, inputs: tuple, output: tuple, keyword_only_inputs: dict | None = None) -> None:
        ctx.params = keyword_only_inputs or {}
        ctx.saved = residual_names(ops, inputs)
        y, statistic = output[0], iter(output[1])
        residuals = [y if name == "y" else next(statistic) for name in ctx.saved]
        ctx.save_for_backward(*inputs, *residuals)

    def forward_backward(ctx: Any, cotangent: torch.Tensor, _statistics: Any = None) -> tuple:
        inputs, residuals = ctx.saved_tensors[:count], ctx.saved_tensors[count:]
        wrt = [need and name in signature.differentiable and inputs[p] is not None and inputs[p].is_floating_point()
               for p, (name, need) in enumerate(zip(signature.inputs, ctx.needs_input_grad))]
        if not any(wrt):
            return (None,) * len(inputs)
        # the residuals are functions of the inputs the vjp_jvp op differentiates through already
        grads = iter(ops.vjp(cotangent, *inputs, [r.detach() for r in residuals], wrt=wrt, **ctx.params))
        return tuple(next(grads) if want else None for want in wrt)

    def save(ctx: Any, inputs: tuple, output: Any, keyword_only_inputs: dict) -> None:
        ctx.params = {k: v for k, v in keyword_only_inputs.items() if k != "wrt"}
        ctx.wrt = keyword_only_inputs["wrt"]
        ctx.save_for_backward(*inputs[:-1])  # the cotangent and the inputs, not the residuals
        ctx.residuals = len(inputs[-1])

    def vjp_backward(ctx: Any, outer: Sequence) -> tuple:
        cotangent, *inputs = ctx.saved_tensors
        given = iter(outer)
        tangents = [next(given) if want else None for want in ctx.wrt]
        needed, no_residuals = ctx.needs_input_grad, [None] * ctx.residuals
        if all(t is None for t in tangents) or not any(needed):
            return (None,) * count + (None, no_residuals)
        by_cotangent = ops.jvp(*tangents, *inputs, **ctx.params).to(cotangent.dtype) if needed[0] else None
        wrt = [need and name in signature.differentiable and a is not None and a.is_floating_point()
               for name, need, a in zip(signature.inputs, needed[1:], inputs)]
        by_inputs = iter(ops.vjp_jvp(cotangent, *tangents, *inputs, wrt=wrt, **ctx.params)) if any(wrt) else iter(())
        return (by_cotangent, *(next(by_inputs) if want else None for want in wrt), no_residuals)

    torch.library.register_autograd(ops.forward, forward_backward, setup_context=save_forward)
    torch.library.register_autograd(ops.vjp, vjp_backward, setup_context=save)
