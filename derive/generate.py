"""Derive and render operators into an output folder, or check that the folder is current.

This is the layer the CLI calls: it reports progress through a callback, takes unchanged
operators from the render cache (``derive.cache``), derives the others in parallel processes
when there is more than one, writes atomically through ``emit.render.write_tree``, and never
leaves a half-written folder behind.  The files are the same whichever way they were made.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from . import registry
from .cache import RenderCache
from .calculus.pipeline import derive
from .emit.render import differences, render, stale_files, write_tree

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Outcome:
    files: dict[str, str]
    stale: list[str]


@dataclass(frozen=True)
class Options:
    """How to render: through a cache (None: none) and with at most ``jobs`` processes."""

    cache: RenderCache | None = None
    jobs: int = 1


def available_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def render_one(name: str) -> tuple[dict[str, str], float]:
    """One operator's files and the seconds it took (run in a worker process or in this one)."""
    started = time.perf_counter()
    return render(derive(registry.get(name))), time.perf_counter() - started


def render_operators(names: Iterable[str], progress: Progress = lambda message: None,
                     options: Options = Options()) -> dict[str, str]:
    """Relative path -> text for the named operators (every name is checked before any work)."""
    names = list(names)
    for name in names:
        registry.factory(name)
    rendered: dict[str, dict[str, str]] = {}
    for name in names:
        cached = options.cache.load(name) if options.cache else None
        if cached is not None:
            rendered[name] = cached
            progress(f"[{len(rendered)}/{len(names)}] {name} (unchanged, from the cache)")
    missing = [name for name in names if name not in rendered]
    for name, files, seconds in _derive_all(missing, options.jobs):
        rendered[name] = files
        if options.cache:
            options.cache.store(name, files)
        progress(f"[{len(rendered)}/{len(names)}] {name} ({seconds:.2f} s)")
    return {path: text for name in names for path, text in rendered[name].items()}


def _derive_all(names: list[str], jobs: int):
    """(name, files, seconds) for each operator, in completion order; parallel when it pays."""
    workers = min(jobs, len(names))
    if workers <= 1:
        for name in names:
            yield (name, *render_one(name))
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context()) as pool:
        futures = {pool.submit(render_one, name): name for name in names}
        try:
            for future in as_completed(futures):
                yield (futures[future], *future.result())
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _pool_context() -> multiprocessing.context.BaseContext:
    """Fork a single-threaded Linux process (workers start with derive imported); otherwise a
    fork server where there is one (forking a process with threads can deadlock), else spawn."""
    methods = multiprocessing.get_all_start_methods()
    if sys.platform == "linux" and "fork" in methods and _threads() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["derive.generate", "derive.ops"])
        return context
    return multiprocessing.get_context("spawn")


def _threads() -> int:
    """Operating-system threads of this process (0 when unknown)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0


def plan(out: Path, names: list[str] | None, progress: Progress, options: Options) -> Outcome:
    """Render the named operators (all when ``names`` is empty); stale files only for a full run."""
    full = not names
    files = render_operators(names or registry.names(), progress, options)
    return Outcome(files, stale_files(out, files) if full else [])


def generate(out: Path, names: list[str] | None = None, progress: Progress = lambda m: None,
             options: Options = Options()) -> list[str]:
    """Write the operators' files into ``out``; returns the paths that changed."""
    outcome = plan(out, names, progress, options)
    return write_tree(out, outcome.files, outcome.stale)


def check(out: Path, names: list[str] | None = None, progress: Progress = lambda m: None,
          options: Options = Options()) -> list[str]:
    """Unified diffs of what ``generate`` would change in ``out`` (empty when current)."""
    outcome = plan(out, names, progress, options)
    return differences(out, outcome.files, outcome.stale)
