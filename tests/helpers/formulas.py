"""A formula's numbers: a document's twin (its equations as ``srepr``), the oracle's expansion with
the catalogue's labels, and the values a formula and the generated kernel are evaluated at, so that
a document's equation can be compared with the kernel that runs."""

from __future__ import annotations

import itertools
import json

import numpy as np
import sympy as sp

from derive.model import registry
from derive.proof.oracle import concrete as _concrete
from helpers import LATEX


def twin(name: str) -> dict:
    """The JSON twin of operator ``name``'s document in generated/latex."""
    return json.loads((LATEX / f"{name}.json").read_text(encoding="utf-8"))


LABELS = {i.name: i.index_of for name in registry.names() for i in registry.get(name).inputs if i.domain == "index"}
"""Each built-in class-label input's name, and the size of the axis its labels index."""


def concrete(expr: sp.Expr, sizes: dict, values: dict) -> sp.Expr:
    """The oracle's ``concrete``, with the catalogue's class labels."""
    return _concrete(expr, sizes, values, LABELS)


def model_array(inp, sizes: dict, rng: np.random.Generator) -> np.ndarray:
    """Random values on the input's core axes, within its domain (integer labels for an index input)."""
    shape = tuple(int(d.subs(sizes)) for d in inp.dims)
    domain = getattr(inp, "domain", "real")
    if domain == "index":
        return rng.integers(0, int(inp.index_of.subs(sizes)), size=shape)
    values = rng.standard_normal(shape)
    if domain == "positive":
        return np.abs(values) + 0.5
    if domain == "nonzero":
        return np.sign(values) * (np.abs(values) + 0.5)
    return values


class KernelCall:
    """How arrays on the model's core axes are passed to a kernel of the model's layout: the
    ``groups`` layout takes channels G x D as one axis (C-order); every other layout takes them as is."""

    def __init__(self, model, sizes: dict) -> None:
        self.model, self.sizes, self.params = model, sizes, {}
        if model.layout.kind == "groups":
            self.params[model.layout.param] = int(model.inputs[0].dims[1].subs(sizes))

    def to_user(self, inp, array: np.ndarray) -> np.ndarray:
        if self.model.layout.kind != "groups":
            return array
        if inp is self.model.inputs[0]:
            n, g, d, s = array.shape
            return array.reshape(n, g * d, s)
        return array.reshape(-1)


def entries(arrays: dict[str, np.ndarray]) -> dict[sp.Symbol, sp.Expr]:
    """x -> {x_0: ..., x_1: ...} (a scalar array -> {x: ...}), as the names concrete.expand uses;
    integer arrays (class labels) stay integers."""
    values = {}
    for name, array in arrays.items():
        array = np.asarray(array)
        number = (lambda v: sp.Integer(int(v))) if array.dtype.kind in "iu" else (lambda v: sp.Float(float(v), 30))
        if array.ndim == 0:
            values[sp.Symbol(name)] = number(array)
        for at in itertools.product(*(range(s) for s in array.shape)) if array.ndim else ():
            values[sp.Symbol("_".join([name, *map(str, at)]))] = number(array[at])
    return values
