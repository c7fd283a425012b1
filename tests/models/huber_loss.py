"""Huber loss with mean reduction, written with Abs like torch.nn.functional.huber_loss."""

import sympy as sp

from derive.model import Input, Layout, OperatorModel, Param, index, size
from derive.registry import register


@register
def huber_loss() -> OperatorModel:
    n = size("n")
    i = index("i", n)
    a, b = Input("a", (n,)), Input("b", (n,))
    delta = sp.Symbol("delta", positive=True)
    z = sp.Abs(a[i] - b[i])
    loss = sp.Piecewise((z ** 2 / 2, z < delta), (delta * (z - delta / 2), True))
    return OperatorModel(
        name="huber_loss",
        summary="mean of 0.5 z^2 where |z| < delta, else delta (|z| - delta/2), z = a - b",
        category="loss",
        inputs=(a, b),
        layout=Layout("flatten"),
        params=(Param("delta", 1.0, delta, "where the loss turns linear"),),
        output_indices=(),
        output=sp.Sum(loss, (i, 0, n - 1)) / n,
        torch="torch.nn.functional.huber_loss(a, b, delta=delta)",
    )
