"""Derive and render operators into an output folder, or check that the folder is current.

This is the layer the CLI calls: it reports progress through a callback, takes unchanged built-in
operators and unchanged model files from the render cache (``derive.pipeline.cache``), derives the other
built-ins in parallel processes when there is more than one, and writes through ``derive.pipeline.output``
(atomic files, a manifest, a lock).  Ctrl-C stops the worker processes at once and raises
``Interrupted``, which says that nothing was written.  Operators are given as models (built-in,
installed or from a user's file); none means every built-in one.  The files are the same whichever
way they were made.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import sympy as sp

from ..budget import Budget, limits, step
from ..calculus.pipeline import derive
from ..model import OperatorModel, registry
from ..targets.latex.target import is_abridged
from ..targets.render import render_registry
from .cache import RenderCache
from .output import differences, interrupts_held, refuse_folder, require_output, write
from .render import render_model

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Outcome:
    """The rendered files; ``full``: every built-in operator (files derive no longer writes are stale)."""

    files: dict[str, str]
    full: bool


class Interrupted(KeyboardInterrupt):
    """Ctrl-C while operators were being derived: nothing was written; the message says what was done."""


@dataclass(frozen=True)
class Options:
    """How to render: through a cache (None: none), with at most ``jobs`` processes, within
    ``budget`` (None: the limits held already, the command line's, else the environment's;
    ``derive.budget``)."""

    cache: RenderCache | None = None
    jobs: int = 1
    budget: Budget | None = None


def available_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def expected_work(model: OperatorModel) -> int:
    """A rough measure of how long ``model`` takes to derive, render and prove (its output's size, by
    its inputs, axes and formula variants): the pool starts the largest first, so the longest one
    (attention, a third of the catalogue) does not start last while the other worker idles."""
    nodes = sum(1 for _ in sp.preorder_traversal(model.output))
    variants = max((len(p.choices) for p in model.params), default=0) or 1
    return nodes * len(model.inputs) * len(model.dims()) * variants


def render_one(name: str) -> tuple[dict[str, str], float]:
    """One built-in operator's files and the seconds it took (in this process, or in a worker
    process within the parent's budget, its long steps reported to the parent)."""
    started = time.perf_counter()
    with limits(*_worker_budget):
        return render_model(registry.get(name)), time.perf_counter() - started


def render_models(models: Sequence[OperatorModel], progress: Progress = lambda message: None,
                  whole_registry: bool = False, options: Options = Options()) -> dict[str, str]:
    """Relative path -> text for the given operator models.

    Built-in operators and a user's model file come from the cache when unchanged; missing
    built-ins are derived in parallel, other models (a user's file) here.  ``whole_registry``: the
    models are the whole registry, so also render the documents that cover every operator (the
    LaTeX handbook).  Everything is held to ``options.budget`` (``derive.budget``).
    """
    with limits(options.budget, progress) as budget:
        return _render_models(models, progress, whole_registry, options, budget)


def _render_models(models: Sequence[OperatorModel], progress: Progress, whole_registry: bool, options: Options,
                   budget: Budget) -> dict[str, str]:
    rendered: dict[str, dict[str, str]] = {}
    for model in models:
        cached = options.cache.load(model) if options.cache else None
        if cached is not None:
            rendered[model.name] = cached
            progress(f"[{len(rendered)}/{len(models)}] {model.name} (unchanged, from the cache)")
    missing = [m.name for m in sorted(models, key=expected_work, reverse=True)
               if m.name not in rendered and registry.is_builtin(m)]
    try:
        for name, files, seconds in _derive_all(missing, options.jobs, budget, progress):
            rendered[name] = files
            if options.cache and not is_abridged(files, name):
                options.cache.store(name, files)
            progress(f"[{len(rendered)}/{len(models)}] {name} ({seconds:.2f} s)")
        for model in models:
            if model.name not in rendered:
                started = time.perf_counter()
                rendered[model.name] = render_model(model, cache=options.cache)
                progress(f"[{len(rendered)}/{len(models)}] {model.name} ({time.perf_counter() - started:.2f} s)")
    except KeyboardInterrupt:
        kept = " (kept in the render cache for the next run)" if options.cache and rendered else ""
        raise Interrupted(f"{len(rendered)} of {len(models)} operators were ready{kept}") from None
    files = {path: text for model in models for path, text in rendered[model.name].items()}
    if whole_registry:
        files.update(_registry_files(models, progress, options))
    return files


def _registry_files(models: Sequence[OperatorModel], progress: Progress, options: Options) -> dict[str, str]:
    """The documents covering every operator, from the cache when no operator changed."""
    names = [m.name for m in models]
    cached = options.cache.load_registry(names) if options.cache else None
    if cached is not None:
        progress("whole registry (unchanged, from the cache)")
        return cached
    started = time.perf_counter()
    derivations = [derive(model) for model in models]
    with step("rendering the documents that cover every operator"):
        files = render_registry(derivations)
    if options.cache:
        options.cache.store_registry(names, files)
    progress(f"whole registry ({time.perf_counter() - started:.2f} s)")
    return files


def _derive_all(names: list[str], jobs: int, budget: Budget | None = None, progress: Progress = lambda m: None):
    """(name, files, seconds) for each operator, in completion order; parallel when it pays (the
    workers' reports of long steps are passed to ``progress``).

    While the pool runs, Ctrl-C only sets a flag (``interrupts_held``), read between short waits:
    a KeyboardInterrupt raised inside ``concurrent.futures`` could leave a future's lock held by this
    thread, and the pool's manager thread, blocked on it, then kept the process from exiting
    (an occasional hang after "N of 26 operators were ready")."""
    workers = min(jobs, len(names))
    if workers <= 1:
        for name in names:
            yield (name, *render_one(name))
        return
    context = _pool_context()
    reports = context.SimpleQueue()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_start_worker,
                               initargs=(budget, reports))
    held: list[int] = []
    try:
        with interrupts_held() as held:
            pending = {pool.submit(render_one, name): name for name in names}
            while pending:
                done, _ = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                if held:
                    raise KeyboardInterrupt
                while not reports.empty():
                    progress(reports.get())
                for future in done:
                    yield (pending.pop(future), *future.result())
        if held:  # came while the last operator was handed over
            raise KeyboardInterrupt
    except BaseException as error:
        _stop(pool)
        if held and not isinstance(error, KeyboardInterrupt):
            # the same Ctrl-C reached the fork server or a starting worker first (the terminal sends it
            # to the whole process group), which broke the pool: an interrupt, not an internal error
            raise KeyboardInterrupt from None
        raise
    pool.shutdown(wait=True)


_worker_budget: tuple = ()
"""In a worker process: the parent's budget and the report of its long steps (to the parent's queue);
in the parent: none, the budget held already."""


def _start_worker(budget: Budget | None = None, reports=None) -> None:
    """Workers leave Ctrl-C to the parent, which stops them (a terminal sends it to all of them), and
    end when their parent does: a parent killed outright (SIGKILL) cannot stop them, and a worker
    left rendering would hold the terminal's (or a caller's) output pipe open for minutes."""
    global _worker_budget
    _worker_budget = (budget, reports.put if reports is not None else None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()  # the process that started the pool (not a fork server)
    if parent is not None:
        threading.Thread(target=_end_with, args=(parent,), name="derive-parent-watch", daemon=True).start()


def _end_with(parent) -> None:
    parent.join()  # returns when the parent's sentinel closes: it has exited, however it ended
    os._exit(1)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the workers now, not when their operator is done.

    A worker ended part-way through sending its result (a large one goes in pieces) leaves the
    pool's manager thread waiting for the rest of that message, and this process, which joins that
    thread at exit, with it; once every worker is gone, closing this process's end of the result
    pipe (the last writer) ends that wait."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)  # shutdown forgets it
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=5)
    if writer is not None and not any(process.is_alive() for process in processes):
        writer.close()


def _pool_context() -> multiprocessing.context.BaseContext:
    """Fork a single-threaded Linux process (workers start with derive imported); otherwise a
    fork server where there is one (forking a process with threads can deadlock), else spawn."""
    methods = multiprocessing.get_all_start_methods()
    if sys.platform == "linux" and "fork" in methods and _threads() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["derive.pipeline.generate", "derive.ops"])
        return context
    return multiprocessing.get_context("spawn")


def _threads() -> int:
    """Operating-system threads of this process (0 when unknown)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0


def render_operators(names: Iterable[str], progress: Progress = lambda message: None,
                     whole_registry: bool = False, options: Options = Options()) -> dict[str, str]:
    """Relative path -> text for the named operators (every name is checked before any work)."""
    return render_models([registry.get(name) for name in names], progress, whole_registry, options)


def plan(out: Path, models: Sequence[OperatorModel] | None, progress: Progress, options: Options) -> Outcome:
    """Render ``models`` (every built-in when None: a full run, which also retires stale files)."""
    if models is None:
        return Outcome(render_operators(registry.names(), progress, whole_registry=True, options=options), True)
    return Outcome(render_models(models, progress, options=options), False)


def _models(names: Sequence[str] | None, models: Sequence[OperatorModel] | None) -> Sequence[OperatorModel] | None:
    if models is not None:
        return models
    return [registry.get(name) for name in names] if names else None


def generate(out: Path, names: Sequence[str] | None = None, progress: Progress = lambda m: None, *,
             models: Sequence[OperatorModel] | None = None, options: Options = Options()) -> list[str]:
    """Write the operators' files into ``out``; returns the paths that changed."""
    refuse_folder(out)  # before minutes of rendering (``write`` asks again)
    outcome = plan(out, _models(names, models), progress, options)
    return write(out, outcome.files, outcome.full, progress)


def check(out: Path, names: Sequence[str] | None = None, progress: Progress = lambda m: None, *,
          models: Sequence[OperatorModel] | None = None, options: Options = Options()) -> list[str]:
    """Unified diffs of what ``generate`` would change in ``out`` (empty when current)."""
    require_output(out)
    outcome = plan(out, _models(names, models), progress, options)
    return differences(out, outcome.files, outcome.full)
