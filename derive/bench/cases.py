"""What is benchmarked: the operators with hand-written baselines, their shapes, and any other
registry operator at a generic shape built from its model.

A case names the operator, the shape of every input (in the kernel's ``INPUTS`` order), the
parameters, and the baselines that exist for it.  ``--quick`` swaps in tiny shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..model import registry
from . import baselines

DTYPES = ("float32", "float64")
"""The dtypes a case runs in (``--dtype``)."""

# the candidates' names, as the tables show them
GENERATED_VJP, CLOSED_VJP = "generated vjp", "closed form vjp"
PLAIN_VJP, NAIVE_VJP = "plain closed form vjp", "naive Jacobian vjp"
TORCH_VJP, COPY = "torch autograd vjp", "numpy copy"
GENERATED_FORWARD, TORCH_FORWARD = "generated forward", "torch forward"
NUMBA_VJP, NUMBA_FORWARD = "numba vjp", "numba forward"
GENERATED_VJP_JVP, TORCH_VJP_JVP = "generated vjp_jvp", "torch double backward"

NORM_SHAPES = ((8192, 4096), (4096, 5120), (4096, 1024), (256, 768))
SOFTMAX_SHAPES = ((8192, 4096), (4096, 1024))
"""(4096, 1024): issue 15's shape for the second order (vjp_jvp beside PyTorch's double backward)."""
QUICK_ROWS = (6, 40)


@dataclass(frozen=True)
class Baselines:
    closed: Callable | None = None
    plain: Callable | None = None
    naive: Callable | None = None


@dataclass(frozen=True)
class Case:
    op: str
    inputs: dict[str, tuple[int, ...]]
    params: dict = field(default_factory=dict)
    baselines: Baselines = Baselines()
    positive: bool = False
    """Draw inputs from [0.5, 1.5] instead of N(0, 1) (generic cases: logs and roots stay finite)."""

    @property
    def label(self) -> str:
        return f"{self.op} {tuple(self.largest)}"

    @property
    def largest(self) -> tuple[int, ...]:
        return max(self.inputs.values(), key=lambda shape: int(np.prod(shape)))

    def arrays(self, dtype: np.dtype, rng: np.random.Generator) -> list[np.ndarray]:
        if self.positive:
            return [rng.uniform(0.5, 1.5, shape).astype(dtype) for shape in self.inputs.values()]
        return [rng.standard_normal(shape, dtype=dtype) for shape in self.inputs.values()]


def _norm(op: str, shape: tuple[int, ...], eps: float) -> Case:
    n = shape[-1]
    found = Baselines(getattr(baselines, f"closed_{op}"), getattr(baselines, f"plain_{op}"),
                      getattr(baselines, f"naive_{op}", None))
    return Case(op, {"x": shape, "gamma": (n,), "beta": (n,)}, {"eps": eps}, found)


def _softmax(op: str, shape: tuple[int, ...]) -> Case:
    found = Baselines(getattr(baselines, f"closed_{op}"), getattr(baselines, f"plain_{op}"),
                      getattr(baselines, f"naive_{op}"))
    return Case(op, {"x": shape}, {"axis": -1}, found)


def _batchnorm(shape: tuple[int, ...]) -> Case:
    channels = shape[1]
    found = Baselines(baselines.closed_batchnorm, baselines.plain_batchnorm)
    return Case("batchnorm", {"x": shape, "gamma": (channels,), "beta": (channels,)}, {"eps": 1e-5}, found)


def _group_norm(shape: tuple[int, ...], groups: int) -> Case:
    channels = shape[1]
    return Case("group_norm", {"x": shape, "gamma": (channels,), "beta": (channels,)},
                {"num_groups": groups, "eps": 1e-5})


def _matmul(m: int, k: int, n: int) -> Case:
    return Case("matmul", {"a": (m, k), "b": (k, n)}, {}, Baselines(baselines.closed_matmul))


def handwritten(quick: bool) -> dict[str, list[Case]]:
    """The operators with baselines, at the issue's shapes (or tiny ones)."""
    norm_shapes = (QUICK_ROWS,) if quick else NORM_SHAPES
    softmax_shapes = (QUICK_ROWS,) if quick else SOFTMAX_SHAPES
    return {
        "rmsnorm": [_norm("rmsnorm", s, 1e-6) for s in norm_shapes],
        "layernorm": [_norm("layernorm", s, 1e-5) for s in norm_shapes],
        "softmax": [_softmax("softmax", s) for s in softmax_shapes],
        "log_softmax": [_softmax("log_softmax", s) for s in softmax_shapes],
        "batchnorm": [_batchnorm((2, 3, 4, 5) if quick else (32, 64, 56, 56))],
        "group_norm": [_group_norm((2, 4, 4, 5), 2) if quick else _group_norm((32, 64, 56, 56), 8)],
        "matmul": [_matmul(5, 6, 7) if quick else _matmul(1024, 1024, 1024)],
    }


def generic(op: str, quick: bool) -> Case:
    """A case for any registry operator: required inputs get a batch axis, optional ones do not.

    One core axis: (8192, 4096), like the normalizations.  More core axes: each 256, batch 16.
    """
    model = registry.get(op)
    dims = model.dims()
    if quick:
        sizes, batch = {str(d): 5 + i for i, d in enumerate(dims)}, (4,)
    elif len(dims) <= 1:
        sizes, batch = {str(d): 4096 for d in dims}, (8192,)
    else:
        sizes, batch = {str(d): 256 for d in dims}, (16,)
    shapes = {}
    for inp in model.inputs:
        core = tuple(sizes[str(d)] for d in inp.dims)
        shapes[inp.name] = core if inp.optional else batch + core
    params = {p.name: p.default for p in model.params}
    return Case(op, shapes, params, Baselines(), positive=True)


def plan(ops: list[str], quick: bool) -> list[Case]:
    """Cases for ``ops`` (default: every hand-written operator, then the rest of the registry)."""
    table = handwritten(quick)
    names = ops or list(dict.fromkeys([*table, *registry.names()]))
    cases: list[Case] = []
    for name in names:
        cases.extend(table[name] if name in table else [generic(name, quick)])
    return cases


def known(name: str) -> bool:
    return name in handwritten(True) or name in registry.names()
