"""The generated kernels, and inputs for any operator made from its model alone (its layout, its
axes, each input's domain), so that a new operator is tested by the whole battery without new test code."""

from __future__ import annotations

import functools
import importlib.util
import itertools
from pathlib import Path
from types import ModuleType

import numpy as np

from derive.model import registry
from helpers import GENERATED

KERNEL_TARGETS: tuple[str, ...] = ("numpy", "array_api", "numba")
"""The targets whose generated kernels keep the kernel contract (INPUTS, forward, vjp, jvp, the same
checks): the kernel tests run over each through the ``kernel_target`` fixture."""

NUMBA_BATTERY = ("mul", "sigmoid", "gelu", "reduce_mean", "softmax", "layernorm", "cross_entropy", "matmul",
                 "mse_loss", "batchnorm", "group_norm")
"""The operators the kernel tests run compiled on the numba target (each layout, two inputs with
broadcasting, a runtime helper, a formula-selecting parameter, the shift and exp, optional inputs,
integer inputs, a contraction): numba compiles every function on its first call (1-2 s each, and a
CI run's cache is cold), so the other operators' numba tests are deselected, not run, unless
DERIVE_NUMBA_ALL=1.  Every numba kernel is still proved against the oracle before it is written
(its loops interpreted), and test_generate checks that generated/ is what the proved generator writes."""


def load_kernel(name: str, target: str = "numpy", folder: Path | None = None) -> ModuleType:
    """The generated ``target`` kernel of operator ``name`` (from ``folder`` if given).  A kernel of
    generated/ is loaded once per test process: a numba kernel loaded again would look up (or
    compile) each of its compiled functions again on its first call."""
    return _load_kernel(name, GENERATED / target) if folder is None else _load_kernel.__wrapped__(name, folder)


@functools.cache
def _load_kernel(name: str, folder: Path) -> ModuleType:
    path = folder / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"kernel_{name}_{abs(hash(folder))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def model_of(name: str):
    """The built-in operator ``name``'s model, built once per test process (the helpers below ask
    for it thousands of times, at collection and in every kernel test; a model is immutable)."""
    return registry.get(name)


SIZE_CASES = (1, 3, 4)
BATCH_CASES = ((), (2,), (2, 3))


def shape_cases(name: str) -> list[tuple[dict, tuple]]:
    """(size of every core axis, batch shape): n = 1, odd, even; 0, 1 and 2 batch dims.

    Axes get distinct sizes (1, 2, 3, ... above the base) so that a mixed-up axis shows.
    """
    dims = model_of(name).dims()
    return [({str(d): size + position for position, d in enumerate(dims)}, batch)
            for size, batch in itertools.product(SIZE_CASES, BATCH_CASES)]


def param_cases(name: str) -> list[dict]:
    """Keyword parameters to call with: the defaults, and each value of a formula-selecting one."""
    model = model_of(name)
    cases = [{}]
    for param in model.params:
        cases += [{param.name: value} for value in param.choices if value != param.default]
    return cases


def required_params(name: str, sizes: dict) -> dict:
    model = model_of(name)
    return {"num_groups": sizes["G"]} if any(p.name == "num_groups" for p in model.params) else {}


def random_values(shape: tuple, domain: str, rng: np.random.Generator, dtype=np.float64, upper: int = 0) -> np.ndarray:
    """Random entries for an input of ``domain``: labels below ``upper``, positive, nonzero or any real."""
    if domain == "index":
        return rng.integers(0, max(upper, 1), size=shape)  # (labels of 0 classes: out of range)
    values = rng.standard_normal(shape)
    if domain == "positive":
        values = np.abs(values) + 0.5
    elif domain == "nonzero":
        values = np.sign(values) * (np.abs(values) + 0.5)
    return values.astype(dtype)


def user_shape(model, inp, sizes: dict, batch: tuple, position: int) -> tuple:
    """The shape a caller passes for ``inp``, as the model's layout expects it."""
    core = tuple(sizes[str(d)] for d in inp.dims)
    kind = model.layout.kind
    if kind in ("channels", "groups"):
        channels = core[0] * core[1] if kind == "groups" and position else None
        if position == 0:
            n, c = core[0], core[1] * core[2] if kind == "groups" else core[1]
            return (n, c) + batch
        return (channels,) if kind == "groups" else core
    if kind == "elementwise" and position % 2:
        return core  # every other input broadcasts against the batch
    return core if inp.optional else batch + core


def make_inputs(name: str, sizes: dict, batch: tuple, rng: np.random.Generator,
                dtype=np.float64) -> tuple[list[np.ndarray], dict]:
    """Random inputs for one shape case, and the keyword parameters the layout requires."""
    model = model_of(name)
    arrays = []
    for position, inp in enumerate(model.inputs):
        shape = user_shape(model, inp, sizes, batch, position)
        upper = sizes[str(inp.index_of)] if inp.index_of is not None else 0
        arrays.append(random_values(shape, inp.domain, rng, dtype, upper))
    return arrays, required_params(name, sizes)


def float_positions(name: str) -> list[int]:
    return [p for p, inp in enumerate(model_of(name).inputs) if inp.domain != "index"]
