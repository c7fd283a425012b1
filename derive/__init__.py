"""derive: gradient formulas of neural-network operators, derived symbolically, shipped as code and maths.

The Python interface is re-exported here from ``derive.api`` (``load``, ``derive``, ``vjp``,
``render``, ``write``, ``load_kernel``, ``claim`` ...); the ``derive`` command is a layer over it.
"""

__version__ = "0.1.0"

from .api import (  # noqa: E402  (the version is defined first: modules below import it)
    changes, claim, derive, jacobian, jvp, latex, load, load_file, load_kernel, operators, render, targets, vjp, write,
)
from .emit.display import readable  # noqa: E402

__all__ = ["changes", "claim", "derive", "jacobian", "jvp", "latex", "load", "load_file", "load_kernel", "operators",
           "readable", "render", "targets", "vjp", "write", "__version__"]
