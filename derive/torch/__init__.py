"""PyTorch through the generated kernels: ``operator(name_or_model_file)`` and drop-in ``torch.nn``
norms (``RMSNorm``, ``LayerNorm``, ``GroupNorm``, ``BatchNorm1d``/``2d``/``3d``).

    rmsnorm = derive.torch.operator("rmsnorm")          # or operator("my_op.py"), a model file
    y = rmsnorm(x, gamma, beta, eps=1e-6)               # tensors in, a tensor out
    y.sum().backward()                                  # backward: the generated vjp

Two modes, as ``derive.jax`` has.  ``mode="op"`` (the default): custom ops (``derive.torch.ops``)
that ``torch.compile(fullgraph=True)`` traces without a graph break, running the numba kernels on
CPU tensors (the ``array_api`` kernel elsewhere), the forward saving the residuals the vjp reads;
reverse mode and a double backward run derived formulas, and a call whose input carries a
forward-mode tangent runs the other mode.  ``mode="function"`` (``derive.torch.function``): a
``torch.autograd.Function`` over the ``array_api`` kernel, forward mode (``torch.func.jvp``)
included, not compiled.  Keyword parameters
are not differentiated: a tensor one that requires grad is a TypeError, not a gradient silently
missing.
"""

from __future__ import annotations

from .build import MODES, function, operator
from .modules import BatchNorm, BatchNorm1d, BatchNorm2d, BatchNorm3d, GroupNorm, LayerNorm, RMSNorm

__all__ = ["MODES", "BatchNorm", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "GroupNorm", "LayerNorm", "RMSNorm",
           "function", "operator"]
