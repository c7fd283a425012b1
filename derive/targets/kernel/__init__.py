"""The core every Python kernel target shares and none of them owns (its templates: ``templates/kernel/``).

``namespace.py``: the array namespace a kernel calls (``np``, ``xp``) and what its runtime does with
it; ``contract.py``: a kernel's signature, inputs, frame and layout, and its module docstring;
``printer.py``: array code over the frame (``FramePrinter``, which the NumPy and the Array API
printers extend); ``functions.py``: one kernel function printed from the schedule; ``view.py``:
the view of an array-code kernel, one set of functions per formula variant.
"""

from __future__ import annotations

from .contract import Contract, contract, header, positions, suffix, tuple_literal
from .functions import axis_variable, by_axis
from .namespace import ARRAY_API, NUMPY, Namespace
from .printer import ArraySpec, FramePrinter, check_separable
from .view import KernelView, array_specs, build_view, centred, symbol_names

__all__ = ["ARRAY_API", "NUMPY", "ArraySpec", "Contract", "FramePrinter", "KernelView", "Namespace", "array_specs",
           "axis_variable", "build_view", "by_axis", "centred", "check_separable", "contract", "header", "positions",
           "suffix", "symbol_names", "tuple_literal"]
