"""The output targets, one folder each, and their registry.

A target is a folder (``numpy/``, ``latex/``: its printer, its view of a derivation, its file
list) with templates in ``templates/<name>/``, and one registration: a ``Target`` (``base.py``)
naming its output folder, template, view builder, header and the proofs its files pass before they
are written.  The Python kernel targets (NumPy, numba, Array API) share ``kernel/``, which none of
them owns (its templates: ``templates/kernel/``); no target imports another.  Every target reads
the shared schedule (``derive.schedule``); ``render.py`` runs the one rendering loop over ``TARGETS``.
"""

from __future__ import annotations

from . import array_api, latex, numba, numpy
from .base import Target

TARGETS: tuple[Target, ...] = (numpy.TARGET, numba.TARGET, latex.TARGET, array_api.TARGET)
"""Every target ``derive generate`` renders, in order (explicit imports, so the order is fixed)."""

__all__ = ["TARGETS", "Target"]
