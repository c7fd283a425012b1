"""derive: gradient formulas of neural-network operators, derived symbolically, shipped as code and maths.

The Python interface is re-exported here from ``derive.api`` (``load``, ``derive``, ``vjp``, ``vjp_jvp``,
``render``, ``write``, ``load_kernel``, ``claim`` ...); the ``derive`` command is a layer over it.
"""

from .version import __version__
from .api import (
    changes, claim, derive, jacobian, jvp, kernel, latex, load, load_file, load_kernel, operators, render, targets, vjp,
    vjp_jvp, write,
)
from .budget import Budget, OverBudget, limits
from .display import readable

__all__ = ["Budget", "OverBudget", "changes", "claim", "derive", "jacobian", "jvp", "kernel", "latex", "limits", "load",
           "load_file", "load_kernel", "operators", "readable", "render", "targets", "vjp", "vjp_jvp", "write",
           "__version__"]
