"""The NumPy target: one standalone kernel module ``generated/numpy/<op>.py`` per operator.

``printer.py`` prints index expressions as NumPy array code; the view is the shared kernel core's
(``derive/targets/kernel/``) against the namespace ``np``, laid out by ``templates/numpy/kernel.py.jinja``
with the shared templates of ``templates/kernel/`` (functions, NumPy runtime, layouts).
"""

from __future__ import annotations

from ...calculus.pipeline import Derivation
from ...model import OperatorModel
from ..base import Target
from ..kernel import NUMPY, KernelView, build_view, header
from .printer import KernelPrinter


def build(derivation: Derivation) -> KernelView:
    return build_view(derivation, KernelPrinter, NUMPY)


def _prove_kernel(model: OperatorModel, text: str, seed: int) -> None:
    from ...proof.kernel import prove_kernel  # NumPy starts threads: imported when a proof runs

    prove_kernel(model, text, seed)


TARGET = Target("numpy", "numpy", "numpy/kernel.py.jinja", ".py", build, header,
                proofs={".py": _prove_kernel})
