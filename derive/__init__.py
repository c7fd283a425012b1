"""derive: gradient formulas of neural-network operators, derived symbolically, shipped as code and maths.

The Python interface is re-exported here from ``derive.api`` (``load``, ``derive``, ``vjp``, ``vjp_jvp``,
``render``, ``write``, ``load_kernel``, ``claim``, ``trace`` ...); the ``derive`` command is a layer over it.
Importing the package imports the catalogue (``derive.ops``), which fills the registry.
"""

import sys

from . import ops  # noqa: F401  (the catalogue: importing it registers the built-in operators)
from .api import (
    changes,
    claim,
    derive,
    jacobian,
    jvp,
    kernel,
    latex,
    load,
    load_file,
    load_kernel,
    operators,
    render,
    targets,
    trace,
    vjp,
    vjp_jvp,
    write,
)
from .budget import Budget, OverBudget, limits
from .display import readable
from .model import functions, registry
from .version import __version__

sys.modules.setdefault("derive.registry", registry)  # the paths model files import (now derive.model.*), kept
sys.modules.setdefault("derive.functions", functions)

__all__ = ["Budget", "OverBudget", "changes", "claim", "derive", "functions", "jacobian", "jvp", "kernel", "latex",
           "limits", "load", "load_file", "load_kernel", "operators", "readable", "registry", "render", "targets",
           "trace", "vjp", "vjp_jvp", "write", "__version__"]
