"""Second order: the derivative of the simplified VJP along input tangents (``vjp_jvp``).

With ``L = sum_i dy[i] y[i]`` the VJP by input ``a`` is ``dL/da[k]``, an index expression in the
inputs and the cotangent.  Differentiating it once more by input ``b`` (the cotangent held fixed)
and contracting with ``b``'s tangent gives one term of the Hessian-vector product:

    vjp_jvp_a[k] = sum_b sum_m  d(vjp_a[k]) / d b[m]  dot_b[m]

Each term is worked out by the same rules as the first order (``derivation_steps``), so index
clashes, deltas and range guards are handled alike, and contracted the same way: what is left are
reductions of O(input) cost, never an n x n Hessian.  The terms are kept apart, one per input ``b``,
so a kernel skips the term of an input whose tangent is ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..model import Input
from . import contract
from .differentiate import Step, derivation_steps
from .indices import fresh_entry, index_names
from .rules import simplify


@dataclass(frozen=True)
class SecondTerm:
    """The part of ``vjp_jvp`` by one input that comes from the tangent of input ``by``."""

    by: Input
    wrt: sp.Indexed
    """``b[m...]``: the entry the VJP is differentiated by (index names clash with nothing)."""
    steps: tuple[Step, ...]
    """From ``Partial(vjp_a[k], b[m])`` to the worked-out derivative, one rule at a time."""
    hessian: sp.Expr
    """``d vjp_a[k] / d b[m]``, simplified: the Hessian block of ``L`` contracted with the cotangent."""
    product: sp.Expr
    """``sum_m hessian * dot_b[m]``, simplified: this term of ``vjp_jvp_a[k]``."""


def wrt_entry(by: Input, vjp: sp.Expr, taken: set[str]) -> sp.Indexed:
    """``b[m...]`` with index names free in neither the VJP nor ``taken`` (which it extends)."""
    taken |= index_names(vjp)
    return fresh_entry(by.base, by.dims, taken)


def second_terms(vjp: sp.Expr, vjp_indices: tuple[sp.Idx, ...], inputs: tuple[Input, ...],
                 tangent_name) -> tuple[SecondTerm, ...]:
    """One ``SecondTerm`` per input in ``inputs`` whose term is not identically zero."""
    terms = []
    for by in inputs:
        taken = {str(i.label) for i in vjp_indices} | {i.name for i in inputs}
        wrt = wrt_entry(by, vjp, taken)
        steps = tuple(derivation_steps(vjp, wrt))
        hessian = simplify(steps[-1].expr)
        if hessian == 0:
            continue
        product = contract.jvp(sp.IndexedBase(tangent_name(by.name)), hessian, tuple(wrt.indices))
        if product != 0:
            terms.append(SecondTerm(by, wrt, steps, hessian, product))
    return tuple(terms)
