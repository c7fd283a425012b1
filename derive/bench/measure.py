"""Timing and memory of callables: median wall time over interleaved repeats, tracemalloc peaks.

Candidates of one case are timed in rounds (each candidate once per round, after warm-up calls)
so that a slow spell of a shared machine hits all of them alike.  A pause before each candidate's
turn lets the threads of the previous one go idle (OpenBLAS's spin for about 0.1 s after a BLAS
call and would slow down the next candidate); after a pause the candidate is called once untimed,
then timed: a rested machine wakes its threads and caches slowly (a 4 ms numba or PyTorch backward
on 2 threads took 6-12 ms right after a 0.15 s sleep, measured 2026-12-01), and a kernel called in a
training loop runs with both awake.  A result is dropped only after its clock stops.  Peak memory
is measured in a separate call, outside the timed ones.
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable

import numpy as np


def interleaved_times(candidates: dict[str, Callable[[], object]], repeats: int,
                      warmup: int = 1, pause: float = 0.0) -> dict[str, list[float]]:
    """Seconds per call of each candidate, ``repeats`` rounds after ``warmup`` calls each; with a
    ``pause``, each turn sleeps that many seconds, then makes an untimed call, then the timed one."""
    for call in candidates.values():
        for _ in range(warmup):
            call()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            for name, call in candidates.items():
                if pause:
                    time.sleep(pause)
                    call()
                started = time.perf_counter()
                result = call()
                times[name].append(time.perf_counter() - started)
                del result
    finally:
        if enabled:
            gc.enable()
    return times


def median_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1e3


def peak_bytes(call: Callable[[], object]) -> int:
    """Largest amount of memory allocated through Python and NumPy during one call."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        result = call()
        peak = tracemalloc.get_traced_memory()[1] - before
        del result
        return peak
    finally:
        tracemalloc.stop()


def copy_call(array: np.ndarray) -> Callable[[], None]:
    """np.copyto into a preallocated buffer: the bandwidth bound of reading and writing ``array``."""
    target = np.empty_like(array)
    target[...] = 0  # touch every page before timing

    def copy() -> None:
        np.copyto(target, array)

    return copy


def moved_bytes(*values: object) -> int:
    """Bytes of every array among ``values`` (tuples are flattened, None is skipped)."""
    total = 0
    for value in values:
        if isinstance(value, (tuple, list)):
            total += moved_bytes(*value)
        elif value is not None:
            total += np.asarray(value).nbytes
    return total
