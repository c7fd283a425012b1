"""Shared test helpers: load generated kernels, pick concrete shapes for any operator model."""

from __future__ import annotations

import importlib.util
import itertools
import os
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from derive import registry

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "generated"
OPERATORS = registry.names()


def load_kernel(name: str, folder: Path = GENERATED / "numpy") -> ModuleType:
    path = folder / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"kernel_{name}_{abs(hash(folder))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SIZE_CASES = (1, 3, 4)
BATCH_CASES = ((), (2,), (2, 3))


def shape_cases(name: str) -> list[tuple[dict, tuple]]:
    """(sizes of every core axis, batch shape) cases: n = 1, odd, even; 0, 1 and 2 batch dims."""
    model = registry.get(name)
    dims = model.dims()
    cases = []
    for size, batch in itertools.product(SIZE_CASES, BATCH_CASES):
        sizes = {str(d): size + position for position, d in enumerate(dims)}  # distinct sizes catch axis mix-ups
        cases.append((sizes, batch))
    return cases


def make_inputs(name: str, sizes: dict, batch: tuple, rng: np.random.Generator,
                dtype=np.float64) -> list[np.ndarray]:
    """Random inputs: required inputs carry the batch dims, optional ones (scale, shift) do not."""
    model = registry.get(name)
    arrays = []
    for inp in model.inputs:
        core = tuple(sizes[str(d)] for d in inp.dims)
        shape = core if inp.optional else batch + core
        arrays.append(rng.standard_normal(shape).astype(dtype))
    return arrays


@pytest.fixture(scope="session", autouse=True)
def private_render_cache(tmp_path_factory: pytest.TempPathFactory):
    """Tests (and the commands they start) use a fresh render cache, never the user's."""
    previous = os.environ.get("DERIVE_CACHE_DIR")
    os.environ["DERIVE_CACHE_DIR"] = str(tmp_path_factory.mktemp("render-cache"))
    yield
    if previous is None:
        os.environ.pop("DERIVE_CACHE_DIR", None)
    else:
        os.environ["DERIVE_CACHE_DIR"] = previous


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261121)
