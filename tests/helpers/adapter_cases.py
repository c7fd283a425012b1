"""Small cases for the framework adapters' gradient checks, built from each operator's model alone.

``ALL``: one case per formula-selecting parameter value (gelu's ``approximate``, causal attention),
an ``axis=0`` case where the model lays its inputs along ``axis``, and, for operators with optional
inputs, the first optional input omitted (None): a different size per axis, one batch dimension of
2, so a mixed-up axis or a broadcast gradient left unsummed shows.  ``NON_TENSOR``: the inputs a
caller passes that are not arrays (a Python number, None), each alone, with ``torch_derivatives``
(of ``helpers.torch_cases.CALLS``, PyTorch's own operators) as their reference to second order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from derive.model import registry
from helpers import OPERATORS
from helpers.kernels import make_inputs, param_cases, random_values
from helpers.torch_cases import CALLS


@dataclass(frozen=True)
class Case:
    name: str
    arrays: tuple  # NumPy float64 arrays (int64 labels), None for an omitted input, a Python number
    params: dict
    label: str

    @functools.cached_property
    def floats(self) -> list[int]:
        """Positions of the arrays differentiated (not labels, not omitted, not Python numbers);
        worked out once (it builds the model), not at each of the hundreds of calls a gradient
        check makes."""
        model = registry.get(self.name)
        return [p for p, (inp, a) in enumerate(zip(model.inputs, self.arrays))
                if isinstance(a, np.ndarray) and inp.domain != "index"]

    def directions(self) -> tuple[np.ndarray, list]:
        """A cotangent of the output and a tangent per differentiated input (None elsewhere)."""
        rng = np.random.default_rng(7)
        shape = tuple(CALLS[self.name](*(None if a is None else torch.tensor(a) for a in self.arrays),
                                       **self.params).shape)
        tangents = [rng.standard_normal(np.shape(a)) if p in self.floats else None for p, a in enumerate(self.arrays)]
        return rng.standard_normal(shape), tangents

    def of_floats(self, function: Callable, given: Sequence) -> Callable:
        """``function`` of the differentiated inputs alone: the other arguments fixed at ``given``
        (arrays or tensors, by position), the case's parameters passed."""
        def call(*values):
            arrays = list(given)
            for position, value in zip(self.floats, values):
                arrays[position] = value
            return function(*arrays, **self.params)
        return call


def cases(name: str) -> list[Case]:
    model = registry.get(name)
    base = 3 if len(model.dims()) == 1 else 2
    sizes = {str(d): base + position for position, d in enumerate(model.dims())}
    rng = np.random.default_rng(sum(map(ord, name)))
    arrays, required = make_inputs(name, sizes, (2,), rng)
    found = [Case(name, tuple(arrays), {**required, **params}, "-".join(f"{k}={v}" for k, v in params.items()) or "default")
             for params in param_cases(name)]
    if model.layout.kind == "axis":
        found.append(Case(name, tuple(arrays), {**required, "axis": 0}, "axis=0"))
    optional = [p for p, inp in enumerate(model.inputs) if inp.optional]
    if optional:
        omitted = tuple(None if p == optional[0] else a for p, a in enumerate(arrays))
        found.append(Case(name, omitted, required, f"without-{model.inputs[optional[0]].name}"))
    return found


ALL = [case for name in OPERATORS for case in cases(name)]
IDS = [f"{case.name}-{case.label}" for case in ALL]


def non_tensor_cases(name: str) -> list[Case]:
    """Each input that broadcasts as a Python number (the elementwise and flatten layouts, two inputs
    or more: ``mul(x, 2.0)``, ``div(2.0, x)``), and each optional input passed as None."""
    model = registry.get(name)
    base = cases(name)[0]
    rng = np.random.default_rng(sum(map(ord, name)) + 1)
    found = []
    if model.layout.kind in ("elementwise", "flatten") and len(model.inputs) > 1:
        for p, inp in enumerate(model.inputs):
            number = float(random_values((), inp.domain, rng))
            arrays = tuple(number if q == p else a for q, a in enumerate(base.arrays))
            found.append(Case(name, arrays, base.params, f"{inp.name}={number:.3g}"))
    for p, inp in enumerate(model.inputs):
        if inp.optional:
            arrays = tuple(None if q == p else a for q, a in enumerate(base.arrays))
            found.append(Case(name, arrays, base.params, f"{inp.name}=None"))
    return found


NON_TENSOR = [case for name in OPERATORS for case in non_tensor_cases(name)]
NON_TENSOR_IDS = [f"{case.name}-{case.label}" for case in NON_TENSOR]


def torch_derivatives(function, case: Case, arguments: list, cotangent: np.ndarray, tangents: list) -> list:
    """By torch's autograd: ``function(*arguments, **case.params)``, the gradients of <cotangent,
    output> by the differentiated inputs (``create_graph=True``), then the derivatives of
    sum_a <gradient_a, tangent_a> by those inputs and by the cotangent (a double backward); None
    (an input a derivative does not depend on) as zeros."""
    floats = [arguments[p].requires_grad_() for p in case.floats]
    dy = torch.tensor(cotangent, requires_grad=True)
    y = function(*arguments, **case.params)
    grads = torch.autograd.grad(y, floats, dy, create_graph=True)
    inner = sum((g * torch.tensor(tangents[p])).sum() for g, p in zip(grads, case.floats))
    second = torch.autograd.grad(inner, [*floats, dy], allow_unused=True)
    return [y.detach(), *(g.detach() for g in grads),
            *(torch.zeros_like(w) if d is None else d for d, w in zip(second, [*floats, dy]))]


def torch_reference(case: Case, cotangent: np.ndarray, tangents: list) -> list:
    """``torch_derivatives`` of PyTorch's own operator: a Python number as a 0-d tensor (as torch's
    functions take it), an omitted input as None or, beside another optional input given, as the
    constant it stands for (torch 2.13's double backward of layer_norm and batch_norm fails with a
    bias but no weight)."""
    model = registry.get(case.name)
    others = [a for inp, a in zip(model.inputs, case.arrays) if inp.optional and a is not None]
    arguments = [torch.tensor(a) if a is not None else None if not others
                 else torch.full(np.shape(others[0]), float(inp.default), dtype=torch.float64)
                 for inp, a in zip(model.inputs, case.arrays)]
    return torch_derivatives(CALLS[case.name], case, arguments, cotangent, tangents)
