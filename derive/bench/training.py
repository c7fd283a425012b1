"""``derive bench --training``: training steps through ``derive.torch`` beside ``torch.nn``'s, eager
and under ``torch.compile(fullgraph=True)``, ratios side by side (issue 30's table).

Two kinds of case, each timed with four candidates interleaved (``measure.interleaved_times``):
a norm or softmax's forward + backward (the gradients of the input and the parameters, as a
training step needs them) at the issue's shapes, and a whole step of the pre-norm MLP block
(RMSNorm → Linear(512, 2048) → GELU → Linear → residual → LayerNorm → head; cross-entropy, AdamW)
on a 256×512 batch.  The candidates: torch's modules eager, derive's eager, torch's compiled,
derive's compiled.  Graph breaks in the compiled candidates are counted (derive's ops: none).
Imported only for ``--training`` (it imports torch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch._dynamo.utils import counters

from .. import torch as derive_torch
from .measure import interleaved_times, median_ms

CANDIDATES = ("torch eager", "derive eager", "torch compiled", "derive compiled")
NORM_SHAPES = ((256, 512), (4096, 1024), (8192, 4096))
SOFTMAX_SHAPES = ((4096, 1024), (8192, 4096))
QUICK_SHAPE = (8, 16)
BLOCK = {"batch": 256, "features": 512, "hidden": 2048, "classes": 10}
QUICK_BLOCK = {"batch": 8, "features": 16, "hidden": 32, "classes": 3}


def measure(quick: bool, repeats: int, say: Callable[[str], None]) -> dict:
    """Every case's median ms per candidate, the ratios, and the compiled candidates' graph breaks."""
    counters.clear()
    torch.manual_seed(0)
    rows = []
    for op, shape in _cases(quick):
        rows.append(_time(op, shape, _layer_candidates(op, shape), repeats))
        say(row_text(rows[-1]))
    block = QUICK_BLOCK if quick else BLOCK
    rows.append(_time("MLP block step", (block["batch"], block["features"]), _block_candidates(block), repeats))
    say(row_text(rows[-1]))
    breaks = sum(counters["graph_break"].values())
    return {"rows": rows, "graph_breaks": breaks, "threads": torch.get_num_threads()}


def _cases(quick: bool) -> list[tuple[str, tuple[int, int]]]:
    if quick:
        return [(op, QUICK_SHAPE) for op in ("rmsnorm", "layernorm", "softmax", "log_softmax")]
    return [(op, s) for op in ("rmsnorm", "layernorm") for s in NORM_SHAPES] + \
        [(op, s) for op in ("softmax", "log_softmax") for s in SOFTMAX_SHAPES]


def _time(name: str, shape: tuple[int, ...], candidates: dict[str, Callable[[], Any]], repeats: int) -> dict:
    times = interleaved_times(candidates, repeats, warmup=2)
    ms = {candidate: median_ms(seconds) for candidate, seconds in times.items()}
    return {"case": name, "shape": list(shape), "ms": ms,
            "eager_ratio": ms["derive eager"] / ms["torch eager"],
            "compiled_ratio": ms["derive compiled"] / ms["torch compiled"]}


class _Function(torch.nn.Module):
    """A function of one tensor as a module (derive's softmax, compiled as torch's Softmax is)."""

    def __init__(self, function: Callable) -> None:
        super().__init__()
        self.function = function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.function(x)


def _layer_candidates(op: str, shape: tuple[int, int]) -> dict[str, Callable[[], Any]]:
    """Forward + backward of one layer: the input's gradient and the parameters'."""
    n = shape[-1]
    layers = {"rmsnorm": (lambda: torch.nn.RMSNorm(n, eps=1e-6), lambda: derive_torch.RMSNorm(n, eps=1e-6)),
              "layernorm": (lambda: torch.nn.LayerNorm(n), lambda: derive_torch.LayerNorm(n)),
              "softmax": (lambda: torch.nn.Softmax(-1), lambda: _Function(derive_torch.operator("softmax"))),
              "log_softmax": (lambda: torch.nn.LogSoftmax(-1),
                              lambda: _Function(derive_torch.operator("log_softmax")))}[op]
    x = torch.randn(*shape, requires_grad=True)
    dy = torch.randn(*shape)
    theirs, ours = (make() for make in layers)
    modules = {"torch eager": theirs, "derive eager": ours,
               "torch compiled": torch.compile(theirs, fullgraph=True),
               "derive compiled": torch.compile(ours, fullgraph=True)}

    def step(module: Any, parameters: list) -> Callable[[], Any]:
        return lambda: torch.autograd.grad(module(x), [x, *parameters], dy)

    return {name: step(module, list(theirs.parameters() if name.startswith("torch") else ours.parameters()))
            for name, module in modules.items()}


def _block(norms: Any, block: dict) -> torch.nn.Module:
    features, hidden, classes = block["features"], block["hidden"], block["classes"]

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm, self.up = norms.RMSNorm(features), torch.nn.Linear(features, hidden)
            self.down, self.out_norm = torch.nn.Linear(hidden, features), norms.LayerNorm(features)
            self.head = torch.nn.Linear(features, classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = x + self.down(torch.nn.functional.gelu(self.up(self.norm(x))))
            return self.head(self.out_norm(h))

    return Block()


def _block_candidates(block: dict) -> dict[str, Callable[[], Any]]:
    """One AdamW training step of the block, with torch.nn's norms and with derive's."""
    x = torch.randn(block["batch"], block["features"])
    target = torch.randint(block["classes"], (block["batch"],))
    theirs = _block(torch.nn, block)
    ours = _block(derive_torch, block)
    ours.load_state_dict(theirs.state_dict())
    models = {"torch eager": theirs, "derive eager": ours,
              "torch compiled": torch.compile(theirs, fullgraph=True),
              "derive compiled": torch.compile(ours, fullgraph=True)}
    candidates: dict[str, Callable[[], Any]] = {}
    for name, model in models.items():
        parameters = theirs.parameters() if name.startswith("torch") else ours.parameters()
        optimizer = torch.optim.AdamW(parameters, lr=1e-4)

        def step(model: Any = model, optimizer: Any = optimizer) -> Any:
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x), target)
            loss.backward()
            optimizer.step()
            return loss.detach()

        candidates[name] = step
    return candidates


def row_text(row: dict) -> str:
    ms = row["ms"]
    return (f"training {row['case']} {'×'.join(map(str, row['shape']))}: "
            + ", ".join(f"{name} {ms[name]:.3f} ms" for name in CANDIDATES)
            + f"; derive / torch eager {row['eager_ratio']:.2f}×, compiled {row['compiled_ratio']:.2f}×")


def markdown_table(training: dict) -> str:
    """The training-step table: torch's and derive's, eager and compiled, and the two ratios."""
    lines = [f"Training steps (forward + backward; the block: a whole AdamW step), float32, "
             f"{training['threads']} torch threads, graph breaks in the compiled: {training['graph_breaks']}",
             "",
             "| case | shape | torch eager ms | derive eager ms | ratio | torch.compile ms | derive compiled ms "
             "| ratio |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in training["rows"]:
        ms = row["ms"]
        lines.append(f"| {row['case']} | {'×'.join(map(str, row['shape']))} | {ms['torch eager']:.3f} "
                     f"| {ms['derive eager']:.3f} | {row['eager_ratio']:.2f}× | {ms['torch compiled']:.3f} "
                     f"| {ms['derive compiled']:.3f} | {row['compiled_ratio']:.2f}× |")
    return "\n".join(lines)
