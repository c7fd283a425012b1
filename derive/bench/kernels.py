"""Benchmark one case: the generated forward and vjp beside the baselines, PyTorch and a copy.

Before anything is timed, every vjp's gradients are compared with the generated kernel's (a
baseline that disagrees is reported, not ranked).  Each row carries the median time, the bytes
the call must move at least (every array it takes or returns, once), the effective bandwidth,
its share of NumPy's copy bandwidth, and the peak memory tracemalloc saw, over the input size.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ..model import registry
from . import adapter, measure, torch_ref
from .cases import (
    CLOSED_VJP,
    COPY,
    GENERATED_FORWARD,
    GENERATED_VJP,
    GENERATED_VJP_JVP,
    NAIVE_VJP,
    NUMBA_FORWARD,
    NUMBA_VJP,
    PLAIN_VJP,
    TORCH_FORWARD,
    TORCH_VJP,
    TORCH_VJP_JVP,
    Case,
)

NAIVE_MAX_N = 1024
NAIVE_MAX_BYTES = 2 << 30
PAUSE_S, PAUSE_FROM_BYTES = 0.15, 16 << 20
"""Seconds of rest before each candidate's turn (an untimed call, then the timed one) in a case whose
largest input has at least 16 MiB (the large shapes, whose calls take milliseconds; the small
shapes' sub-millisecond calls run back to back, without rests)."""


class Skip(Exception):
    """A case that cannot run (no generated kernel, another input contract); the message says why."""


@dataclass(frozen=True)
class Candidate:
    name: str
    kind: str  # "forward", "vjp", "vjp_jvp" (second order) or "copy"
    call: Callable[[], Any]
    traced: bool = True  # tracemalloc sees its memory (NumPy, not torch)
    group: str = "numpy"
    """Candidates are timed group by group, interleaved within a group: the threads of one
    library (OpenBLAS's, torch's OpenMP) still spinning must not slow another down."""


def load_kernel(folder: Path, op: str, target: str = "numpy") -> ModuleType:
    path = folder / target / f"{op}.py"
    if not path.is_file() and op not in registry.names():
        raise Skip(f"no generated kernel {path}, and no model of it in the registry yet")
    if not path.is_file():
        raise Skip(f"no generated kernel {path} (run `derive generate {op}`)")
    spec = importlib.util.spec_from_file_location(f"derive_bench_{target}_{op}", path)
    if spec is None or spec.loader is None:
        raise Skip(f"{path} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tolerance(dtype: np.dtype) -> float:
    return 2e-3 if np.dtype(dtype) == np.float32 else 1e-8


def disagreement(expected: tuple, got: tuple, dtype: np.dtype) -> str | None:
    """None when every gradient matches to the dtype's tolerance (relative to its largest entry)."""
    for position, (want, have) in enumerate(zip(expected, got)):
        if want is None or have is None:
            continue
        want, have = np.asarray(want, dtype=np.float64), np.asarray(have, dtype=np.float64)
        if want.shape != have.shape:
            return f"gradient {position} has shape {have.shape}, expected {want.shape}"
        scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
        error = float(np.max(np.abs(want - have))) / scale if want.size else 0.0
        if not error <= tolerance(dtype):
            return f"gradient {position} differs by {error:.2e} (relative)"
    return None


def _naive_fits(case: Case, dtype: np.dtype) -> bool:
    shape = case.inputs[next(iter(case.inputs))]
    rows, n = int(np.prod(shape[:-1])), shape[-1]
    return n <= NAIVE_MAX_N and rows * n * n * np.dtype(dtype).itemsize <= NAIVE_MAX_BYTES


def second_order(case: Case, kernel: ModuleType, arrays: list[np.ndarray], dy: np.ndarray,
                 tangents: list[np.ndarray], notes: list[str]) -> list[Candidate]:
    """The generated ``vjp_jvp`` and PyTorch's double backward along the same tangents."""
    if not hasattr(kernel, "vjp_jvp"):
        notes.append("vjp_jvp left out: the generated kernel has none (regenerate it)")
        return []
    found = [Candidate(GENERATED_VJP_JVP, "vjp_jvp", lambda: kernel.vjp_jvp(dy, tangents, *arrays, **case.params))]
    try:
        second = torch_ref.double_backward(case.op, arrays, case.params, dy, tangents)
    except Exception as error:  # PyTorch without a double backward for it: no torch row
        notes.append(f"torch double backward left out: {type(error).__name__}: {error}")
        second = None
    if second is not None:
        found.append(Candidate(TORCH_VJP_JVP, "vjp_jvp", second, traced=False, group="torch"))
    return found


def candidates(case: Case, kernel: ModuleType, arrays: list[np.ndarray], dy: np.ndarray,
               dtype: np.dtype, notes: list[str], folder: Path = Path("generated"),
               compiled: ModuleType | None = None, tangents: list[np.ndarray] | None = None) -> list[Candidate]:
    params = case.params
    found = [
        Candidate(GENERATED_FORWARD, "forward", lambda: kernel.forward(*arrays, **params)),
        Candidate(GENERATED_VJP, "vjp", lambda: kernel.vjp(dy, *arrays, **params)),
    ]
    if compiled is not None:
        found += [Candidate(NUMBA_FORWARD, "forward", lambda: compiled.forward(*arrays, **params), group="numba"),
                  Candidate(NUMBA_VJP, "vjp", lambda: compiled.vjp(dy, *arrays, **params), group="numba")]
    for name, baseline in ((CLOSED_VJP, case.baselines.closed), (PLAIN_VJP, case.baselines.plain)):
        if baseline is not None:
            found.append(Candidate(name, "vjp", partial(baseline, dy, *arrays, **params)))
    naive = case.baselines.naive
    if naive is not None and _naive_fits(case, dtype):
        found.append(Candidate(NAIVE_VJP, "vjp", lambda: naive(dy, *arrays, **params), group="naive"))
    try:
        reference = torch_ref.autograd(case.op, arrays, params, dy)
    except Exception as error:  # a PyTorch signature that differs from the kernel's: no torch rows
        notes.append(f"torch autograd left out: {type(error).__name__}: {error}")
        reference = None
    if reference is not None:
        forward, backward = reference
        found += [Candidate(TORCH_FORWARD, "forward", forward, traced=False, group="torch"),
                  Candidate(TORCH_VJP, "vjp", backward, traced=False, group="torch")]
    found += [Candidate(name, kind, call, traced=False, group="torch")
              for name, kind, call in adapter.calls(case.op, folder, arrays, params, dy, notes)]
    if tangents is not None:
        found += second_order(case, kernel, arrays, dy, tangents, notes)
    largest = max(arrays, key=lambda a: a.nbytes)
    found.append(Candidate(COPY, "copy", measure.copy_call(largest), traced=False))
    return found


def _gradients(value: Iterable) -> tuple:
    return tuple(None if g is None else np.asarray(g.detach() if hasattr(g, "detach") else g) for g in value)


def run_case(case: Case, dtype: np.dtype, folder: Path, repeats: int, warmup: int,
             rng: np.random.Generator, numba: bool = True) -> dict:
    """Measure one case at one dtype (the numba kernel too, unless ``numba`` is false); raises
    Skip when it cannot run."""
    kernel = load_kernel(folder, case.op)
    if tuple(kernel.INPUTS) != tuple(case.inputs):
        raise Skip(f"the generated {case.op} takes inputs {kernel.INPUTS}; the benchmark case has {tuple(case.inputs)}")
    arrays = case.arrays(dtype, rng)
    try:
        output = kernel.forward(*arrays, **case.params)
    except (TypeError, ValueError) as error:
        raise Skip(f"the generated {case.op} rejects the case's inputs: {error}") from error
    dy = rng.standard_normal(np.shape(output)).astype(dtype)
    tangents = [rng.standard_normal(np.shape(a)).astype(dtype) for a in arrays]
    notes: list[str] = []
    compiled, first_calls = numba_kernel(case, folder, arrays, dy, notes) if numba else (None, None)
    with np.errstate(all="ignore"):
        result = _measure(case, kernel, arrays, dy, tangents, output, dtype, repeats, warmup, notes, folder, compiled)
    result["numba_first_call_s"] = first_calls
    return result


def numba_kernel(case: Case, folder: Path, arrays: list, dy: np.ndarray, notes: list[str]):
    """The numba kernel of ``case.op`` (None, with a note, when it or numba is missing) and the
    seconds its first forward and vjp calls took here (compiling, or loading numba's cache) and in
    a new process (always from the cache this process left)."""
    try:
        compiled = load_kernel(folder, case.op, "numba")
    except (Skip, ImportError) as error:
        notes.append(f"numba kernel left out: {error}")
        return None, None
    cache = folder / "numba" / "__pycache__"
    cached = any(cache.glob(f"{case.op}.*.nbi")) if cache.is_dir() else False
    times: dict[str, bool | float | None] = {"cache_before": cached}
    for kind, call in (("forward", lambda: compiled.forward(*arrays, **case.params)),
                       ("vjp", lambda: compiled.vjp(dy, *arrays, **case.params))):
        start = time.perf_counter()
        call()
        times[kind] = time.perf_counter() - start
    times["new_process"] = _new_process_first_call(folder / "numba" / f"{case.op}.py", case, arrays[0].dtype)
    return compiled, times


NEW_PROCESS = """
import importlib.util, json, sys, time
import numpy as np
spec = importlib.util.spec_from_file_location("derive_bench_cached", sys.argv[1])
kernel = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kernel)
shapes, params, dtype = json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
arrays = [np.ones(shape, dtype) for shape in shapes]
start = time.perf_counter()
y = kernel.forward(*arrays, **params)
kernel.vjp(np.ones_like(y), *arrays, **params)
print(time.perf_counter() - start)
"""


def _new_process_first_call(path: Path, case: Case, dtype: np.dtype) -> float | None:
    """Seconds of a new process's first forward and vjp (tiny inputs of the same dtype and rank,
    so the same compiled signature), after its imports."""
    shapes = [[min(length, 4) for length in shape] for shape in case.inputs.values()]
    command = [sys.executable, "-c", NEW_PROCESS, str(path), json.dumps(shapes), json.dumps(case.params),
               np.dtype(dtype).name]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    return float(done.stdout.strip()) if done.returncode == 0 else None


def _measure(case, kernel, arrays, dy, tangents, output, dtype, repeats, warmup, notes, folder, compiled=None) -> dict:
    found = candidates(case, kernel, arrays, dy, dtype, notes, folder, compiled, tangents)
    generated = kernel.vjp(dy, *arrays, **case.params)
    second = kernel.vjp_jvp(dy, tangents, *arrays, **case.params) if hasattr(kernel, "vjp_jvp") else None
    reference = {"vjp": generated, "vjp_jvp": second}
    disagreements = {c.name: disagreement(reference[c.kind], _gradients(c.call()), dtype)
                     for c in found if c.kind in reference and c.name not in (GENERATED_VJP, GENERATED_VJP_JVP)}
    input_bytes = max(a.nbytes for a in arrays)
    pause = PAUSE_S if input_bytes >= PAUSE_FROM_BYTES else 0.0
    times: dict[str, list[float]] = {}
    for group in dict.fromkeys(c.group for c in found):
        chosen = {c.name: c.call for c in found if c.group == group}
        rounds = repeats if group != "naive" else min(repeats, 3)
        times.update(measure.interleaved_times(chosen, rounds, warmup, pause))
    moved = {"forward": measure.moved_bytes(arrays, output), "vjp": measure.moved_bytes(dy, arrays, generated),
             "vjp_jvp": measure.moved_bytes(dy, arrays, tangents, second or ()), "copy": 2 * input_bytes}
    copy_gbs = moved["copy"] / measure.median_ms(times[COPY]) / 1e6
    rows = []
    for c in found:
        ms = measure.median_ms(times[c.name])
        peak = measure.peak_bytes(c.call) if c.traced else None
        gbs = moved[c.kind] / ms / 1e6
        rows.append({
            "name": c.name, "kind": c.kind, "ms": ms, "ms_all": [t * 1e3 for t in times[c.name]],
            "bytes": moved[c.kind], "gbs": gbs, "copy_pct": 100 * gbs / copy_gbs,
            "peak_bytes": peak, "peak_ratio": None if peak is None else peak / input_bytes,
            "disagrees": disagreements.get(c.name),
        })
    return {"op": case.op, "shape": list(case.largest), "inputs": {k: list(v) for k, v in case.inputs.items()},
            "dtype": np.dtype(dtype).name, "input_bytes": input_bytes, "copy_gbs": copy_gbs,
            "rows": rows, "ratios": {**ratios(rows), **adapter.ratios(rows)}, "notes": notes}


def ratios(rows: list[dict]) -> dict[str, float]:
    """Generated (NumPy, then numba) vjp time, and the generated vjp_jvp time, over each other
    candidate's time of the same kind (only for those that agree)."""
    by_name = {r["name"]: r for r in rows}
    found: dict[str, float] = {}
    for kind, own, label in (("vjp", GENERATED_VJP, "generated"), ("vjp", NUMBA_VJP, "numba"),
                             ("vjp_jvp", GENERATED_VJP_JVP, GENERATED_VJP_JVP)):
        if own in by_name and not by_name[own]["disagrees"]:
            mine = by_name[own]["ms"]
            found |= {f"{label} / {r['name']}": mine / r["ms"] for r in rows
                      if r["kind"] == kind and r["name"] not in (GENERATED_VJP, own) and not r["disagrees"]}
    return found
