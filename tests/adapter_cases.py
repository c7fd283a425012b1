"""Small cases for the framework adapters' gradient checks, built from each operator's model alone.

One case per formula-selecting parameter value (gelu's ``approximate``, causal attention), an
``axis=0`` case where the model lays its inputs along ``axis``, and, for operators with optional
inputs, the first optional input omitted (None): a different size per axis, one batch dimension of
2, so a mixed-up axis or a broadcast gradient left unsummed shows.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from derive import registry

from conftest import OPERATORS, make_inputs, param_cases


@dataclass(frozen=True)
class Case:
    name: str
    arrays: tuple  # NumPy float64 arrays (int64 labels), None for an omitted input
    params: dict
    label: str

    @functools.cached_property
    def floats(self) -> list[int]:
        """Positions of the inputs given and differentiated (not labels, not omitted); worked out
        once (it builds the model), not at each of the hundreds of calls a gradient check makes."""
        model = registry.get(self.name)
        return [p for p, (inp, a) in enumerate(zip(model.inputs, self.arrays))
                if a is not None and inp.domain != "index"]


def cases(name: str) -> list[Case]:
    model = registry.get(name)
    base = 3 if len(model.dims()) == 1 else 2
    sizes = {str(d): base + position for position, d in enumerate(model.dims())}
    rng = np.random.default_rng(sum(map(ord, name)))
    arrays, required = make_inputs(name, sizes, (2,), rng)
    found = [Case(name, tuple(arrays), {**required, **params}, "-".join(f"{k}={v}" for k, v in params.items()) or "default")
             for params in param_cases(name)]
    if model.layout.kind == "axis":
        found.append(Case(name, tuple(arrays), {**required, "axis": 0}, "axis=0"))
    optional = [p for p, inp in enumerate(model.inputs) if inp.optional]
    if optional:
        omitted = tuple(None if p == optional[0] else a for p, a in enumerate(arrays))
        found.append(Case(name, omitted, required, f"without-{model.inputs[optional[0]].name}"))
    return found


ALL = [case for name in OPERATORS for case in cases(name)]
IDS = [f"{case.name}-{case.label}" for case in ALL]
