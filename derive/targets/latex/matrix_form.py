"""The matrix form of a Jacobian entry J_ik, read off its structure term by term.

A term with a Kronecker delta delta_ik is a diagonal matrix diag(d); a separable term c u_i v_k
is an outer product c u v^T (u or v the all-ones vector when the term lacks i or k).  Entries that
are a constant multiple of the output y_i are written as y, so softmax reads diag(y) - y y^T.
Terms sharing a left factor g_i are also written diag(g) [ ... ].  A Jacobian that does not fit
(more than one index per side, or a factor coupling i and k) has no matrix form: ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ...calculus.indices import free_indices, substitute_index


@dataclass(frozen=True)
class MatrixTerm:
    """coefficient * diag(left) (``diagonal``) or coefficient * left right^T, entries in index i."""

    diagonal: bool
    coefficient: sp.Expr
    left: sp.Expr
    right: sp.Expr = sp.S.One

    def entries(self, i: sp.Idx, k: sp.Idx) -> sp.Expr:
        """This term's (i, k) entry."""
        if self.diagonal:
            return self.coefficient * self.left * sp.KroneckerDelta(i, k)
        return self.coefficient * self.left * substitute_index(self.right, i, k)


@dataclass(frozen=True)
class MatrixForm:
    terms: tuple[MatrixTerm, ...]
    factored: tuple[sp.Expr, sp.Expr, tuple[MatrixTerm, ...]] | None
    """(scale, common left entries g_i, terms inside the bracket), when a common factor exists."""


def matrix_form(jacobian: sp.Expr, i: sp.Idx, k: sp.Idx, output: sp.Expr, name: sp.Expr) -> MatrixForm | None:
    """The matrix form of ``jacobian`` (entry (i, k)); ``output`` (entry i) is written as ``name``."""
    terms = []
    for term in sp.Add.make_args(sp.expand_mul(jacobian) if _needs_expanding(jacobian) else jacobian):
        found = _split_term(term, i, k)
        if found is None:
            return None
        terms.append(_as_output(found, output, name))
    return MatrixForm(tuple(terms), _factor_common(terms))


def entries(form_terms: tuple[MatrixTerm, ...], i: sp.Idx, k: sp.Idx) -> sp.Expr:
    return sp.Add(*[t.entries(i, k) for t in form_terms])


def factored_entries(form: MatrixForm, i: sp.Idx, k: sp.Idx) -> sp.Expr:
    assert form.factored is not None  # called on factored forms only
    scale, common, inner = form.factored
    return scale * common * entries(inner, i, k)


def _needs_expanding(expr: sp.Expr) -> bool:
    """A product holding a sum of delta and non-delta parts is split before reading terms."""
    return any(isinstance(t, sp.Mul) and any(isinstance(f, sp.Add) and f.has(sp.KroneckerDelta) for f in t.args)
               for t in sp.Add.make_args(expr))


def _split_term(term: sp.Expr, i: sp.Idx, k: sp.Idx) -> MatrixTerm | None:
    factors = sp.Mul.make_args(term)
    deltas = [f for f in factors if isinstance(f, sp.KroneckerDelta)]
    rest = [f for f in factors if not isinstance(f, sp.KroneckerDelta)]
    if deltas:
        if len(deltas) != 1 or set(deltas[0].args) != {i, k}:
            return None
        diagonal = substitute_index(sp.Mul(*rest), k, i)
        return _separate(sp.Mul.make_args(diagonal), i, k, diagonal=True)
    return _separate(rest, i, k, diagonal=False)


def _separate(factors, i: sp.Idx, k: sp.Idx, diagonal: bool) -> MatrixTerm | None:
    constant, left, right = [], [], []
    for factor in factors:
        indices = free_indices(factor)
        if not indices:
            constant.append(factor)
        elif indices == {i}:
            left.append(factor)
        elif indices == {k} and not diagonal:
            right.append(factor)
        else:
            return None
    right_in_i = substitute_index(sp.Mul(*right), k, i)
    return MatrixTerm(diagonal, sp.Mul(*constant), sp.Mul(*left), right_in_i)


def _as_output(term: MatrixTerm, output: sp.Expr, name: sp.Expr) -> MatrixTerm:
    """Write a vector that is a constant multiple of the output as that multiple of ``name``."""
    coefficient, vectors = term.coefficient, []
    for vector in (term.left, term.right):
        ratio = sp.powsimp(vector / output) if vector != 1 else None
        if ratio is not None and not free_indices(ratio) and ratio != 0 and not ratio.has(sp.zoo):
            coefficient, vector = coefficient * ratio, name
        vectors.append(vector)
    return MatrixTerm(term.diagonal, coefficient, vectors[0], vectors[1])


def _factor_common(terms: list[MatrixTerm]) -> tuple[sp.Expr, sp.Expr, tuple[MatrixTerm, ...]] | None:
    """diag(g) [ ... ] for the left factors g_i every term shares; the identity's coefficient goes out."""
    if len(terms) < 2:
        return None
    shared = None
    for term in terms:
        factors = list(sp.Mul.make_args(term.left))
        shared = factors if shared is None else [f for f in shared if f in factors]
    common = sp.Mul(*(shared or []))
    if common == 1:
        return None
    inner = [MatrixTerm(t.diagonal, t.coefficient, sp.Mul(*_without(sp.Mul.make_args(t.left), shared)), t.right)
             for t in terms]
    identity = next((t for t in inner if t.diagonal and t.left == 1), None)
    scale = identity.coefficient if identity is not None else sp.S.One
    inner = [MatrixTerm(t.diagonal, t.coefficient / scale, t.left, t.right) for t in inner]
    return scale, common, tuple(inner)


def _without(factors, shared) -> list[sp.Expr]:
    remaining = list(factors)
    for factor in shared:
        remaining.remove(factor)
    return remaining


def written_through(form: MatrixForm, i: sp.Idx, centred: sp.Expr, scale: sp.Expr, name: sp.Expr) -> MatrixForm:
    """``form`` with the centred entry ``centred`` (x_i - mu, in index i) written ``scale * name``
    (sigma x_hat_i), the scale gathered into each term's coefficient: the norms' x_hat x_hat^T."""
    terms = []
    for term in form.terms:
        parts = [sp.factor_terms(side.subs(centred, scale * name)) for side in (term.left, term.right)]
        split = [part.as_independent(i, as_Add=False) for part in parts]
        coefficient = term.coefficient * split[0][0] * split[1][0]
        terms.append(MatrixTerm(term.diagonal, coefficient, split[0][1], split[1][1]))
    return MatrixForm(tuple(terms), _factor_common(terms))
