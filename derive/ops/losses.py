"""Losses with mean reduction: cross_entropy over integer class targets, mse_loss."""

import sympy as sp

from ..model import Input, Layout, OperatorModel, index, size
from ..model.registry import register


@register
def cross_entropy() -> OperatorModel:
    N, C = size("N"), size("C")
    b, c, j = index("b", N), index("c", C), index("j", C)
    logits = Input("logits", (N, C))
    target = Input("target", (N,), differentiable=False, domain="index", index_of=C)
    total = sp.Sum(sp.exp(logits[b, j]), (j, 0, C - 1))
    picked = sp.Sum(sp.KroneckerDelta(target[b], c) * logits[b, c], (c, 0, C - 1))
    return OperatorModel(
        name="cross_entropy",
        cite=("bridle1990probabilistic",),
        summary="mean over the batch of -log softmax(logits)[target]",
        category="loss",
        inputs=(logits, target),
        output_indices=(),
        output=sp.Sum(sp.log(total) - picked, (b, 0, N - 1)) / N,
        shift_invariant=(("logits", C),),
        torch="torch.nn.functional.cross_entropy(logits, target)",
        notes=("target holds class indices 0..C-1 (integers); it has no gradient.",),
    )


@register
def mse_loss() -> OperatorModel:
    n = size("n")
    i = index("i", n)
    a, b = Input("a", (n,)), Input("b", (n,))
    return OperatorModel(
        name="mse_loss",
        summary="mean of (a - b)^2 over every entry",
        category="loss",
        inputs=(a, b),
        layout=Layout("flatten"),
        output_indices=(),
        output=sp.Sum((a[i] - b[i]) ** 2, (i, 0, n - 1)) / n,
        torch="torch.nn.functional.mse_loss(a, b)",
    )
