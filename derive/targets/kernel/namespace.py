"""The array namespace a Python kernel's code calls, and what its runtime does with it.

The NumPy and numba kernels call ``np`` and update arrays in place; the Array API kernels call
``xp``, the namespace of their inputs, which every runtime and layout helper takes as its first
argument.  The shared templates (``templates/kernel/``) print these values; they decide nothing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Namespace:
    name: str
    """The module the printed code calls: ``np`` or ``xp``."""
    passed: bool
    """The namespace is each call's own (``ctx.xp``), passed to every runtime and layout helper."""
    scalars_as_rows: bool
    """0-d elementwise inputs are computed as arrays of shape (1,): NumPy gives a scalar for an
    operation on 0-d arrays, which no in-place update (``out=``, ``*=``) can take."""
    full_options: str
    """Keyword arguments of ``<name>.full`` for an array in the computing dtype (and device)."""
    jvp_keywords: str
    """Extra keyword arguments of the ``_output`` call returning a jvp's total."""
    buffers: bool = False
    """The kernels write into caller-owned buffers (``out=``): NumPy's, numba's and the Array API's
    (for a library whose arrays can be written in place)."""
    residuals: bool = True
    """The kernels save residuals (``forward(..., residuals=True)``, ``vjp(..., residuals=)``)."""

    @property
    def arg(self) -> str:
        """The leading argument of a runtime or layout helper call (``"xp, "``), or nothing."""
        return f"{self.name}, " if self.passed else ""

    def full(self, shape: str, value: float) -> str:
        """Code for a new array of ``shape`` (code) filled with ``value``, in the computing dtype."""
        return f"{self.name}.full({shape}, {value!r}, {self.full_options})"


NUMPY = Namespace("np", passed=False, scalars_as_rows=True, full_options="ctx.dtype", jvp_keywords="",
                  buffers=True)
"""The NumPy and numba kernels' (one runtime: ``templates/kernel/numpy_runtime.py.jinja``)."""
ARRAY_API = Namespace("xp", passed=True, scalars_as_rows=False, full_options="dtype=ctx.dtype, device=ctx.device",
                      jvp_keywords=", copy=total.copy", buffers=True)
"""The Array API kernels' (``templates/array_api/runtime.py.jinja``)."""
