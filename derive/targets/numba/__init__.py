"""The numba target: ``generated/numba/<op>.py``, the Python kernels' contract over compiled loops.

Each kernel function checks and lays out its inputs with the shared NumPy runtime
(``templates/kernel/``), then calls one ``numba.njit(nogil=True)`` function per part of a chunk of
rows (or channels, or groups), the chunks on threads side by side: per unit its reduction passes,
then one fused pass writing every result (``loops.py`` plans the loops from the shared schedule,
``printer.py`` prints them).  The text is written without numba installed; importing a kernel
then names the extra.  The kernel's runtime (``templates/numba/``) caches the compiled code only in a folder no one else
can write, resets its thread pool in a forked child, and lets an interrupt stop a call between parts.
Before it is written, a kernel passes the NumPy kernels' proof with its loops interpreted, the
runtime's chunking set small (``CHUNKINGS``) so that the proof's batches cross every chunk boundary.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import types

from ...model import OperatorModel
from ..base import Target
from ..kernel import header
from .kernel import build_view


def load_interpreted(model: OperatorModel, text: str):
    """The kernel ``text`` executed with numba's compiler off: its loops run as the Python they are
    (the chunks one after another on the pool's threads), so the proof checks exactly the printed
    loops without compiling them (compiling takes 1-30 s per kernel: 2 s for softmax, 29 s for
    attention; the test battery's kernels are proved compiled too, tests/test_prove_numba.py).
    Without numba installed, a stand-in module of those three names does the same."""
    from ...proof.kernel import load_text

    try:
        from numba.core import config
    except ImportError:
        with _stand_in_numba():
            return load_text(model, text)
    previous, config.DISABLE_JIT = config.DISABLE_JIT, True  # type: ignore[attr-defined]
    try:
        return load_text(model, text)
    finally:
        config.DISABLE_JIT = previous  # type: ignore[attr-defined]


@contextlib.contextmanager
def _stand_in_numba():
    stand_in = types.ModuleType("numba")
    stand_in.njit = lambda *args, **options: args[0] if args and callable(args[0]) else (lambda function: function)
    stand_in.config = types.SimpleNamespace(NUMBA_NUM_THREADS=1, DISABLE_JIT=True)
    previous = sys.modules.get("numba")
    sys.modules["numba"] = stand_in
    try:
        yield
    finally:
        if previous is None:
            sys.modules.pop("numba", None)
        else:
            sys.modules["numba"] = previous


CHUNKINGS = ((3, 1, 0), (2, 2, 1))
"""The (threads, chunks per thread, entries per part) the proof runs the loops at, in place of the
machine's (up to 4 chunks per thread, parts of about 4M entries; 0: the runtime's own): a call
splits into at most 3, then 4 chunks, so the proof's batches of 1, 2, 5 and 6 rows reach every
branch of the split, whatever the machine: one row; fewer rows than threads; more rows than chunks
and not a multiple of them (5 rows in 3 or 4 chunks: each chunk's first and last row computed from
its own number, a chunk that starts or ends one row off shows), a multiple (6 rows); whole rows per
chunk (a result added across a row's units) or units spread over rows.  The second runs each unit
as a part of its own, so a chunk's parts follow one another into one slot of the results."""
CHUNKING_GLOBALS = ("_threads", "_CHUNKS_PER_THREAD", "_PART_WORK")
"""The runtime's globals, read at each call, that set how a call is split."""


def chunked(module: types.ModuleType, threads: int, per_thread: int, part_work: int) -> types.SimpleNamespace:
    """``module``'s functions run with its runtime's chunking set to ``threads`` x ``per_thread``
    chunks, and parts of ``part_work`` entries at most (0: the runtime's own)."""
    def at(function):
        @functools.wraps(function)
        def call(*args, **keywords):
            before = tuple(getattr(module, name) for name in CHUNKING_GLOBALS)
            module._threads, module._CHUNKS_PER_THREAD = (lambda: threads), per_thread
            module._PART_WORK = part_work or before[2]
            try:
                return function(*args, **keywords)
            finally:
                for name, value in zip(CHUNKING_GLOBALS, before):
                    setattr(module, name, value)
        return call

    for name in CHUNKING_GLOBALS:
        if not hasattr(module, name):
            raise AttributeError(f"the numba runtime has no {name}: the proof sets its chunking through it")
    return types.SimpleNamespace(RESIDUALS=getattr(module, "RESIDUALS", None),
                                 **{name: at(getattr(module, name)) for name in ("forward", "vjp", "jvp", "vjp_jvp")})


def prove_chunked(model: OperatorModel, module: types.ModuleType, seed: int, how: str,
                  first_sizes: int | None = None) -> None:
    """The NumPy kernels' proof of a loaded numba kernel (``how`` it runs: its loops interpreted or
    compiled), at each of ``CHUNKINGS`` (``first_sizes``: see ``prove_runs``); the thread pool it
    made is shut down after."""
    from ...proof.kernel import prove_runs

    runs = {f"{how}, {threads} threads x {per} chunks{f', parts of {work}' if work else ''}":
            chunked(module, threads, per, work) for threads, per, work in CHUNKINGS}
    try:
        prove_runs(model, runs, seed, first_sizes)
    finally:
        pool = getattr(module, "_POOL", {})
        if pool.get("executor") is not None:
            pool["executor"].shutdown()
        pool.clear()


def _prove_kernel(model: OperatorModel, text: str, seed: int) -> None:
    prove_chunked(model, load_interpreted(model, text), seed, "loops interpreted")


TARGET = Target("numba", "numba", "numba/kernel.py.jinja", ".py", build_view, header,
                proofs={".py": _prove_kernel})
