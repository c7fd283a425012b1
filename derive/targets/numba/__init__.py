"""The numba target: ``generated/numba/<op>.py``, the NumPy kernel's contract over compiled loops.

Each kernel function checks and lays out its inputs with the NumPy target's runtime (the same
templates, included), then calls one ``numba.njit(parallel=True, cache=True)`` function that runs
over rows (or channels, or groups) in parallel: per unit its reduction passes, then one fused pass
writing every result (``loops.py`` plans the loops from the shared schedule, ``printer.py`` prints
them).  The text is written without numba installed; importing a kernel then names the extra.
"""

from __future__ import annotations

from ...model import OperatorModel
from ..base import Target
from ..numpy import python_header
from .kernel import build_view


def load_interpreted(model: OperatorModel, text: str):
    """The kernel ``text`` executed with numba's compiler off: its loops run as the Python they are
    (``prange`` as ``range``), so the proof checks exactly the printed loops without compiling them
    (seconds per kernel; compiling is the test battery's part, which runs every kernel compiled)."""
    from numba.core import config

    from ...prove import load_text

    previous, config.DISABLE_JIT = config.DISABLE_JIT, True
    try:
        return load_text(model, text)
    finally:
        config.DISABLE_JIT = previous


def _prove_kernel(model: OperatorModel, text: str, seed: int) -> None:
    from ...prove import prove_kernel  # the NumPy kernels' proof, run on the compiled kernel

    prove_kernel(model, text, seed, load=load_interpreted)


TARGET = Target("numba", "numba", "numba/kernel.py.jinja", ".py", build_view, python_header,
                proofs={".py": _prove_kernel})
