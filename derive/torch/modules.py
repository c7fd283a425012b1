"""Drop-in ``torch.nn`` norms through derive's operators (``mode="op"``: they compile): the
constructors, defaults, parameter and buffer names of ``torch.nn.RMSNorm``, ``LayerNorm``,
``GroupNorm`` and ``BatchNorm1d``/``2d``/``3d``, so ``load_state_dict`` moves weights either way.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .build import operator

Shape = int | tuple[int, ...] | list[int] | torch.Size


def _shape(normalized_shape: Shape) -> tuple[int, ...]:
    return (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)


class _LastAxesNorm(torch.nn.Module):
    """A norm over the trailing ``normalized_shape`` axes: they are flattened into the kernel's one
    feature axis (and the weight and bias with them), so ``normalized_shape`` may have several axes."""

    op = ""

    def __init__(self, normalized_shape: Shape, eps: float | None, elementwise_affine: bool, bias: bool,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.normalized_shape = _shape(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        factory = {"device": device, "dtype": dtype}
        self.weight = torch.nn.Parameter(torch.ones(self.normalized_shape, **factory)) if elementwise_affine else None
        self.bias = torch.nn.Parameter(torch.zeros(self.normalized_shape, **factory)) \
            if elementwise_affine and bias else None
        self._operator = operator(self.op)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        count = len(self.normalized_shape)
        if tuple(x.shape[x.ndim - count:]) != self.normalized_shape:
            raise ValueError(f"{type(self).__name__}: input of shape {tuple(x.shape)} does not end in "
                             f"normalized_shape {self.normalized_shape}")
        flat = x.reshape(*x.shape[:x.ndim - count], math.prod(self.normalized_shape))
        weight, bias = (None if p is None else p.reshape(-1) for p in (self.weight, self.bias))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        return self._operator(flat, weight, bias, eps=eps).reshape(x.shape)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, " \
               f"bias={self.bias is not None}"


class RMSNorm(_LastAxesNorm):
    """``torch.nn.RMSNorm`` through derive's rmsnorm: x / sqrt(mean(x²) + eps) * weight over the
    trailing ``normalized_shape`` axes; ``eps=None`` (the default, as torch's) is
    ``torch.finfo(x.dtype).eps``.  ``bias=True`` adds derive's model's beta (zeros at first), a
    parameter ``torch.nn.RMSNorm`` does not have."""

    op = "rmsnorm"

    def __init__(self, normalized_shape: Shape, eps: float | None = None, elementwise_affine: bool = True,
                 device: Any = None, dtype: Any = None, *, bias: bool = False) -> None:
        super().__init__(normalized_shape, eps, elementwise_affine, bias, device, dtype)


class LayerNorm(_LastAxesNorm):
    """``torch.nn.LayerNorm`` through derive's layernorm: the same arguments and parameters."""

    op = "layernorm"

    def __init__(self, normalized_shape: Shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__(normalized_shape, eps, elementwise_affine, bias, device, dtype)


class _ChannelNorm(torch.nn.Module):
    """A norm of x[N, C, *spatial] with per-channel ``weight`` and ``bias`` of shape (C,)."""

    op = ""

    def __init__(self, num_channels: int, eps: float, affine: bool, bias: bool, device: Any, dtype: Any) -> None:
        super().__init__()
        self.eps, self.affine = eps, affine
        factory = {"device": device, "dtype": dtype}
        self.weight = torch.nn.Parameter(torch.ones(num_channels, **factory)) if affine else None
        self.bias = torch.nn.Parameter(torch.zeros(num_channels, **factory)) if affine and bias else None
        self._operator = operator(self.op)


class GroupNorm(_ChannelNorm):
    """``torch.nn.GroupNorm`` through derive's group_norm: x[N, C, *spatial] normalised over each
    group of C / num_groups channels and the spatial axes; ``weight`` and ``bias`` of shape (C,)."""

    op = "group_norm"

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 device: Any = None, dtype: Any = None, *, bias: bool = True) -> None:
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) is not divisible by num_groups ({num_groups})")
        self.num_groups, self.num_channels = num_groups, num_channels
        super().__init__(num_channels, eps, affine, bias, device, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._operator(x, self.weight, self.bias, eps=self.eps, num_groups=self.num_groups)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class BatchNorm(_ChannelNorm):
    """``torch.nn.BatchNorm1d``/``2d``/``3d`` through derive's batchnorm, for x[N, C, *spatial] of
    any rank: in training (or without running statistics) the batch's statistics and derive's
    formula; the running mean and (unbiased) variance updated as torch's (``momentum``, or the
    cumulative average when it is None); in eval mode with running statistics the affine map they
    give, as torch's."""

    op = "batchnorm"
    ranks: tuple[int, ...] = ()
    """The input ranks taken (none: any)."""
    running_mean: torch.Tensor
    running_var: torch.Tensor
    num_batches_tracked: torch.Tensor

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device: Any = None, dtype: Any = None, *,
                 bias: bool = True) -> None:
        self.num_features, self.momentum, self.track_running_stats = num_features, momentum, track_running_stats
        super().__init__(num_features, eps, affine, bias, device, dtype)
        factory = {"device": device, "dtype": dtype}
        tracked = track_running_stats
        self.register_buffer("running_mean", torch.zeros(num_features, **factory) if tracked else None)
        self.register_buffer("running_var", torch.ones(num_features, **factory) if tracked else None)
        self.register_buffer("num_batches_tracked",
                             torch.tensor(0, dtype=torch.long, device=device) if tracked else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.ranks and x.ndim not in self.ranks:
            raise ValueError(f"{type(self).__name__}: expected a {' or '.join(f'{r}D' for r in self.ranks)} "
                             f"input, got {x.ndim}D of shape {tuple(x.shape)}")
        if self.training or not self.track_running_stats:
            if self.training and self.track_running_stats:
                self._track(x)
            return self._operator(x, self.weight, self.bias, eps=self.eps)
        return self._with_running_statistics(x)

    def _track(self, x: torch.Tensor) -> None:
        axes = [0, *range(2, x.ndim)]
        with torch.no_grad():
            var, mean = torch.var_mean(x, dim=axes, correction=1)
            self.num_batches_tracked.add_(1)
            momentum: torch.Tensor | float = self.momentum if self.momentum is not None \
                else (1.0 / self.num_batches_tracked).to(self.running_mean.dtype)
            self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
            self.running_var.lerp_(var.to(self.running_var.dtype), momentum)

    def _with_running_statistics(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        scale = torch.rsqrt(self.running_var + self.eps)
        if self.weight is not None:
            scale = scale * self.weight
        shift = -self.running_mean * scale
        if self.bias is not None:
            shift = shift + self.bias
        return x * scale.reshape(shape) + shift.reshape(shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, " \
               f"track_running_stats={self.track_running_stats}"


class BatchNorm1d(BatchNorm):
    """``torch.nn.BatchNorm1d``: x[N, C] or x[N, C, L]."""

    ranks = (2, 3)


class BatchNorm2d(BatchNorm):
    """``torch.nn.BatchNorm2d``: x[N, C, H, W]."""

    ranks = (4,)


class BatchNorm3d(BatchNorm):
    """``torch.nn.BatchNorm3d``: x[N, C, D, H, W]."""

    ranks = (5,)
