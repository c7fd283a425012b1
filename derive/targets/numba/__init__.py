"""The numba target: ``generated/numba/<op>.py``, the NumPy kernel's contract over compiled loops.

Each kernel function checks and lays out its inputs with the NumPy target's runtime (the same
templates, included), then calls one ``numba.njit(nogil=True)`` function per part of a chunk of rows
(or channels, or groups), the chunks on threads side by side: per unit its reduction passes, then one fused pass
writing every result (``loops.py`` plans the loops from the shared schedule, ``printer.py`` prints
them).  The text is written without numba installed; importing a kernel then names the extra.
The kernel's runtime (``templates/numba/``) caches the compiled code only in a folder no one else
can write, resets its thread pool in a forked child, and lets an interrupt stop a call between parts.
"""

from __future__ import annotations

import contextlib
import sys
import types

from ...model import OperatorModel
from ..base import Target
from ..numpy import python_header
from .kernel import build_view


def load_interpreted(model: OperatorModel, text: str):
    """The kernel ``text`` executed with numba's compiler off: its loops run as the Python they are
    (the chunks one after another on the pool's threads), so the proof checks exactly the printed loops without compiling them
    (seconds per kernel; compiling is the test battery's part, which runs every kernel compiled).
    Without numba installed, a stand-in module of those three names does the same."""
    from ...prove import load_text

    try:
        from numba.core import config
    except ImportError:
        with _stand_in_numba():
            return load_text(model, text)
    previous, config.DISABLE_JIT = config.DISABLE_JIT, True
    try:
        return load_text(model, text)
    finally:
        config.DISABLE_JIT = previous


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


def _prove_kernel(model: OperatorModel, text: str, seed: int) -> None:
    from ...prove import prove_module  # the NumPy kernels' proof, run on the loops interpreted

    prove_module(model, load_interpreted(model, text), seed)


TARGET = Target("numba", "numba", "numba/kernel.py.jinja", ".py", build_view, python_header,
                proofs={".py": _prove_kernel})
