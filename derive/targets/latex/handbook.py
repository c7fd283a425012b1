"""The handbook's view: every operator by category, and the seed questions worked by the engine.

The seed questions are the hand derivations the project grew from: the RMSNorm derivative SymPy
got wrong, and the LayerNorm Jacobian whose rows sum to zero.  Every claim in that section is
computed here at generation time (SymPy's own answers included) and checked before it is printed.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ...calculus.concrete import Disagreement, compare, expand
from ...calculus.differentiate import derivation_steps
from ...calculus.equality import UnverifiedEqualityError
from ...calculus.indices import substitute_index
from ...calculus.pipeline import COTANGENT, Derivation, InputGradient
from ...calculus.rules import simplify
from ...display.latex import DisplayPartial
from .equations import Equations, Row, rows
from .stable import shifted
from .symbols import output_name
from .text import tex_escape


@dataclass(frozen=True)
class Category:
    title: str
    operators: tuple[str, ...]


@dataclass(frozen=True)
class RmsSeed:
    plain_sum: str
    """SymPy's derivative of a sum over a plain symbol, as SymPy prints it."""
    clash_definition: str
    clash_result: str
    engine: tuple[Row, ...]
    disagreement: str
    diagonal: tuple[Row, ...]


@dataclass(frozen=True)
class LayerNormSeed:
    shift: tuple[Row, ...]
    row_sum: tuple[Row, ...]
    gradient_sum: tuple[Row, ...]
    column_sum: tuple[Row, ...]
    example: str


@dataclass(frozen=True)
class HandbookView:
    categories: tuple[Category, ...]
    rmsnorm: RmsSeed | None
    layernorm: LayerNormSeed | None


def build_handbook(derivations: list[Derivation]) -> HandbookView:
    """The operators by category; the seed sections for the operators they are about, if registered."""
    by_name = {d.model.name: d for d in derivations}
    categories: dict[str, list[str]] = {}
    for derivation in derivations:
        categories.setdefault(derivation.model.category, []).append(derivation.model.name)
    return HandbookView(
        categories=tuple(Category(tex_escape(c.capitalize()), tuple(ops)) for c, ops in categories.items()),
        rmsnorm=rms_seed(by_name["rmsnorm"]) if "rmsnorm" in by_name else None,
        layernorm=layernorm_seed(by_name["layernorm"]) if "layernorm" in by_name else None)


def rms_seed(derivation: Derivation) -> RmsSeed:
    """SymPy's two wrong turns on RMSNorm, computed live, against the engine's checked answer."""
    model = derivation.model
    eqs = Equations(model, output_name(model))
    plain, top = sp.Symbol("x"), sp.Symbol("n")
    plain_sum = sp.Sum(plain ** 2, (plain, 1, top))
    root_symbol, root = eqs.named[0][0], eqs.unname(eqs.named[0][1])
    gradient = derivation.gradient("x")
    i, k = model.output_indices[0], gradient.wrt_indices[0]
    x = gradient.wrt.base
    clashing = root.xreplace({idx: i for idx in root.atoms(sp.Idx) if idx.upper == i.upper})
    sympy_answer = sp.diff(clashing, x[i])
    engine_answer = simplify(derivation_steps(root, x[k])[-1].expr)
    engine = eqs.add("eq:seed:rms-root", "seed", derivation_steps(root, x[k])[0].expr, engine_answer,
                     shown_lhs=DisplayPartial(root_symbol, x[k]))
    disagreement = compare(sympy_answer, engine_answer, eqs.dims, sizes=(1, 2, 3))
    if disagreement is None:
        raise UnverifiedEqualityError("rmsnorm seed: SymPy's clashing derivative now agrees with the engine; "
                                      "the handbook's account of it would be false")
    diagonal = eqs.add("eq:seed:rms-diagonal", "seed", derivation_steps(model.output, x[i])[0].expr,
                       substitute_index(gradient.jacobian, k, i),
                       shown_lhs=DisplayPartial(eqs.output_entry, x[i]))
    return RmsSeed(
        plain_sum=rf"\frac{{d}}{{d x}} {sp.latex(plain_sum)} = {sp.latex(sp.diff(plain_sum, plain))}",
        clash_definition=f"{eqs.tex(root_symbol)} = {eqs.tex(clashing)}",
        clash_result=rf"\frac{{\partial {eqs.tex(root_symbol)}}}{{\partial {eqs.tex(x[i])}}} = {eqs.tex(sympy_answer)}",
        engine=rows([engine]), disagreement=_disagreement_text(eqs, disagreement),
        diagonal=rows([diagonal]))


def _disagreement_text(eqs: Equations, disagreement: Disagreement) -> str:
    point = ", ".join(f"${eqs.tex(_entry(name))} = {float(value):.4g}$"
                      for name, value in sorted(disagreement.point.items(), key=lambda kv: str(kv[0])))
    where = ", ".join(f"${k} = {v + 1}$" for k, v in disagreement.indices.items())
    sizes = ", ".join(f"${k} = {v}$" for k, v in disagreement.sizes.items())
    return (f"at {sizes}" + (f", {where}" if where else "") + f" and {point}, SymPy's expression is "
            f"${disagreement.left:.6g}$ while the derivative is ${disagreement.right:.6g}$")


def _entry(symbol: sp.Symbol) -> sp.Expr:
    """The display form of a concrete entry symbol x_2 (0-based) -> x[2], printed x_3."""
    name, *position = str(symbol).split("_")
    if position and all(p.isdigit() for p in position):
        return sp.IndexedBase(name)[tuple(int(p) for p in position)]
    return symbol


def layernorm_seed(derivation: Derivation) -> LayerNormSeed:
    """Shift invariance, the vanishing row sums, and the gradient that still flows, all checked."""
    model = derivation.model
    eqs = Equations(model, output_name(model))
    gradient = derivation.gradient("x")
    i, k = model.output_indices[0], gradient.wrt_indices[0]
    partial = gradient.steps[0].expr
    shown_partial = DisplayPartial(eqs.output_entry, gradient.wrt)
    shift = eqs.add("eq:seed:layernorm-shift", "seed", shifted(model.output, model, "x", None), model.output)
    row = sp.Sum(gradient.jacobian, (k, k.lower, k.upper))
    row_sum = [eqs.add("eq:seed:layernorm-row-sum", "seed", sp.Sum(partial, (k, k.lower, k.upper)), row,
                       shown_lhs=sp.Sum(shown_partial, (k, k.lower, k.upper))),
               eqs.add("eq:seed:layernorm-row-sum-zero", "seed", row, simplify(row), against=row)]
    total = sp.Sum(gradient.vjp, (k, k.lower, k.upper))
    signs = eqs.printer.sum_signs(sp.Sum(sp.Symbol("x"), (k, k.lower, k.upper)))
    bar_x = signs + rf"\bar{{x}}_{{{eqs.printer.index_text(k)}}}"
    gradient_sum = eqs.add("eq:seed:layernorm-gradient-sum", "seed", total, simplify(total), name=bar_x)
    unit_scale = gradient.jacobian.replace(lambda e: isinstance(e, sp.Indexed) and str(e.base) == "gamma",
                                           lambda e: sp.S.One)
    column = sp.Sum(unit_scale, (i, i.lower, i.upper))
    column_sum = eqs.add("eq:seed:layernorm-column-sum", "seed", column, simplify(column))
    return LayerNormSeed(rows([shift]), rows(row_sum, chained=True), rows([gradient_sum]), rows([column_sum]),
                         _example(eqs, gradient))


def _example(eqs: Equations, gradient: InputGradient) -> str:
    """x = (1, 2, 3), optional inputs at their defaults, ybar = (1, 0, 0): the exact gradient in sigma."""
    size = {d: 3 for d in eqs.dims}
    values: dict[str, tuple] = {"x": (1, 2, 3), COTANGENT: (1, 0, 0)}
    values.update({inp.name: (inp.default,) * 3 for inp in eqs.model.inputs if inp.optional})
    point = {sp.Symbol(f"{name}_{p}"): sp.Integer(v) for name, vs in values.items() for p, v in enumerate(vs)}
    named = {symbol: expand(eqs.unname(symbol), size, {}).xreplace(point) for symbol, _ in eqs.named}
    sigma = eqs.named[-1][0]
    components = []
    for position in range(3):
        at = {gradient.wrt_indices[0]: position}
        shown = expand(eqs.shown(gradient.vjp), size, at).xreplace(point)
        shown = sp.simplify(shown.xreplace({s: v for s, v in named.items() if s != sigma}))
        exact = expand(gradient.vjp, size, at).xreplace(point)
        if sp.simplify(shown.xreplace({sigma: named[sigma]}) - exact) != 0:
            raise UnverifiedEqualityError(f"layernorm seed example: component {position} does not match the VJP")
        components.append(shown)
    if sp.simplify(sp.Add(*components)) != 0 or all(c == 0 for c in components):
        raise UnverifiedEqualityError("layernorm seed example: expected a non-zero gradient summing to zero")
    vector = r",\; ".join(eqs.tex(c) for c in components)
    return (rf"\bar{{\mathbf{{x}}}} = \left({vector}\right), \qquad "
            rf"{eqs.tex(sigma)} = {eqs.tex(named[sigma])}")
