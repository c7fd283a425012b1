"""Models traced from the array code people already wrote: ``trace(fn, {"x": ("n",)})``.

``tracer.py`` runs the function on symbolic arrays (``arrays.py``) through NumPy's dispatch and the
Array API namespace (``operations.py``, ``namespace.py``) and builds the ``OperatorModel``;
``stabilize.py`` drops the maxima code subtracts for stability and names the indices.
"""

from .tracer import TraceError, trace

__all__ = ["TraceError", "trace"]
