"""The PyTorch adapter (``derive.torch`` over the generated ``array_api`` kernel) beside PyTorch's
own operator: forward (no graph) and vjp (``torch.autograd.grad`` on one recorded forward graph,
as ``torch_ref`` times PyTorch), for the norms and softmaxes, on the CPU."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import torch_ref
from .cases import TORCH_FORWARD, TORCH_VJP

OPS = ("rmsnorm", "layernorm", "batchnorm", "softmax", "log_softmax")
ADAPTER_FORWARD, ADAPTER_VJP = "torch adapter forward", "torch adapter vjp"


def calls(op: str, folder: Path, arrays: list[np.ndarray], params: dict, dy: np.ndarray,
          notes: list[str]) -> list[tuple[str, str, Callable[[], object]]]:
    """(name, kind, call) of the adapter's forward and vjp; none when torch, the operator or its
    ``array_api`` kernel is missing (a note says which)."""
    torch = torch_ref.torch_module()
    if torch is None or op not in OPS:
        return []
    path = folder / "array_api" / f"{op}.py"
    if not path.is_file():
        notes.append(f"torch adapter left out: no generated kernel {path}")
        return []
    from .. import api
    from .. import torch as adapter

    function = adapter.function(api.load_kernel(path), op)
    tensors = [torch.from_numpy(a).requires_grad_() for a in arrays]
    cotangent = torch.from_numpy(dy)

    def forward():
        with torch.no_grad():
            return function(*tensors, **params)

    recorded = function(*tensors, **params)

    def backward():
        return torch.autograd.grad(recorded, tensors, cotangent, retain_graph=True)

    return [(ADAPTER_FORWARD, "forward", forward), (ADAPTER_VJP, "vjp", backward)]


def ratios(rows: list[dict]) -> dict[str, float]:
    """The adapter's time over PyTorch's own, forward and vjp (only for a vjp that agrees)."""
    by_name = {r["name"]: r for r in rows}
    found = {}
    for mine, theirs in ((ADAPTER_FORWARD, torch_ref_name("forward")), (ADAPTER_VJP, torch_ref_name("vjp"))):
        if mine in by_name and theirs in by_name and not by_name[mine]["disagrees"]:
            found[f"{mine} / {theirs}"] = by_name[mine]["ms"] / by_name[theirs]["ms"]
    return found


def torch_ref_name(kind: str) -> str:
    return TORCH_FORWARD if kind == "forward" else TORCH_VJP
