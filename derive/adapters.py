"""What the framework adapters (``derive.torch``, ``derive.jax``) share: the generated ``array_api``
kernel of an operator, and a call's inputs and keyword parameters checked against it.

Kernels come from ``derive.kernel``: a built-in operator's is the shipped
``generated/array_api/<name>.py``; a model file's (``*.py``, see the README's "Your own operator")
or an installed package's operator is written, proved, into the render cache's folder.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from . import api
from .model import OperatorModel, registry


def array_api_kernel(name_or_model_file: str | Path, operator: str | None = None) -> tuple[ModuleType, Signature]:
    """The generated ``array_api`` kernel of a built-in operator (by name), an installed package's
    operator, or an operator of a model file (``operator`` names one when the file has several),
    with its signature (``derive.kernel``: shipped, or rendered, proved and cached)."""
    if not isinstance(name_or_model_file, Path) and str(name_or_model_file) in registry.names():
        return _builtin(str(name_or_model_file))
    model = api.load(name_or_model_file, operator)  # a clear error for an unknown name or a bad file
    kernel = api.kernel(model, "array_api")
    return kernel, Signature.of(kernel, model.name, _numbers(model))


@functools.cache
def _builtin(name: str) -> tuple[ModuleType, Signature]:
    kernel = api.kernel(name, "array_api")
    return kernel, Signature.of(kernel, name, _numbers(registry.get(name)))


def _numbers(model: OperatorModel) -> frozenset[str]:
    """The keyword parameters that are numbers in the formula (a symbol: eps, negative_slope), not
    choices of formula or layout (gelu's ``approximate``, ``axis``, ``num_groups``)."""
    return frozenset(p.name for p in model.params if p.symbol is not None)


@dataclass(frozen=True)
class Signature:
    """What an adapter needs to know of a kernel, from its public contract."""

    name: str
    inputs: tuple[str, ...]
    optional: frozenset[str]
    differentiable: frozenset[str]
    params: dict[str, Any]
    numbers: frozenset[str] = frozenset()
    """The parameters that are numbers in the formula (may be arrays, traced by JAX); the others
    select a formula or an axis and must be Python values.  Empty when not known (no model)."""

    @classmethod
    def of(cls, kernel: ModuleType, name: str, numbers: frozenset[str] = frozenset()) -> Signature:
        defaults = inspect.signature(kernel.forward).parameters
        optional = frozenset(n for n in kernel.INPUTS if defaults[n].default is None)
        return cls(name, tuple(kernel.INPUTS), optional, frozenset(kernel.DIFFERENTIABLE), dict(kernel.PARAMS),
                   numbers & frozenset(kernel.PARAMS))

    def bind(self, inputs: Sequence[Any], named: dict[str, Any], fixed: dict[str, Any]) -> tuple[list, dict]:
        """A call's inputs in ``INPUTS`` order (an omitted optional one is None) and its keyword
        parameters (``fixed`` ones, then the call's); a TypeError names anything that does not fit."""
        if len(inputs) > len(self.inputs):
            raise TypeError(f"{self.name}: takes at most {len(self.inputs)} inputs {self.inputs}, got {len(inputs)}")
        arranged = list(inputs) + [None] * (len(self.inputs) - len(inputs))
        params = dict(fixed)
        for key, value in named.items():
            if key in self.inputs:
                if arranged[self.inputs.index(key)] is not None:
                    raise TypeError(f"{self.name}: input {key!r} given twice (by position and by name)")
                arranged[self.inputs.index(key)] = value
            else:
                params[key] = value
        self.check_params(params)
        missing = [n for n, a in zip(self.inputs, arranged) if a is None and n not in self.optional]
        if missing:
            raise TypeError(f"{self.name}: input {missing[0]!r} is required, got None")
        return arranged, params

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` when every key is one of the kernel's keyword parameters (a TypeError otherwise)."""
        for key in params:
            if key not in self.params:
                raise TypeError(f"{self.name}: unknown keyword {key!r}; inputs: {', '.join(self.inputs)}; "
                                f"parameters: {', '.join(self.params) or 'none'}")
        return dict(params)
