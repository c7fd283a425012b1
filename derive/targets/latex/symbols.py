"""How a document names things: the output (``y`` unless an input is named so), its tangent, an
index subscript, a sum over indices, x̂, and a compact form written in the document's names.

The sections of a document (``view``, ``result``, ``second``, ``handbook``) share these; none of
them imports another's private helpers.
"""

from __future__ import annotations

import sympy as sp

from ...calculus.compact import HAT, OUTPUT
from ...model import OperatorModel
from .equations import Equations

SHOWN_HAT = "xhat"
"""x_hat as the documents name it (the LaTeX printer writes it \\hat{x})."""


def output_name(model: OperatorModel) -> str:
    """``y`` unless an input already has that name."""
    taken = {inp.name for inp in model.inputs}
    return next(name for name in ("y", "z", "out") if name not in taken)


def summed(expr: sp.Expr, indices: tuple[sp.Idx, ...]) -> sp.Expr:
    for idx in indices:
        expr = sp.Sum(expr, (idx, idx.lower, idx.upper))
    return expr


def subscript(eqs: Equations, indices: tuple[sp.Expr, ...]) -> str:
    return f"_{{{eqs.printer.subscript(indices)}}}" if indices else ""


def output_tangent(eqs: Equations, contribution_of: str | None = None) -> str:
    """\\dot{y}_i, or {\\dot{y}^{(x)}}_i for the part contributed by input x."""
    dot = rf"\dot{{{eqs.printer._print(sp.Symbol(eqs.output_name))}}}"
    if contribution_of is not None:
        dot = f"{{{dot}^{{({eqs.printer.base_name(contribution_of)})}}}}"
    return dot + subscript(eqs, eqs.model.output_indices)


def shown(eqs: Equations, expr: sp.Expr) -> sp.Expr:
    """A compact form with the document's names: mu_p for the placeholder mu[p], y for the output."""
    quantities = {q.name: q for q in eqs.names.all}

    mapping = {}
    for entry in expr.atoms(sp.Indexed):
        label = str(entry.base.label)
        if label in quantities:
            mapping[entry] = quantities[label].at(tuple(entry.indices))
        elif label == OUTPUT:
            mapping[entry] = eqs.output_base[entry.indices]
        elif label == HAT:
            mapping[entry] = sp.IndexedBase(SHOWN_HAT)[entry.indices]
    for symbol in expr.free_symbols:
        if isinstance(symbol, sp.Symbol) and str(symbol) in quantities and not quantities[str(symbol)].indices:
            mapping[symbol] = quantities[str(symbol)].at(())
    return expr.xreplace(mapping)
