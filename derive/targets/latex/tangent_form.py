"""The second order written through the first: x̄ differentiated along the tangents of its names.

A VJP written through x̂ and sigma (or through y) differentiates, by the chain and product rules on
the expression as written (``calculus.tangent``), into the same names and their tangents:
layernorm's x̄̇_k = -(σ̇/σ) x̄_k + (1/σ)(γ̇_k ȳ_k - x̂̇_k <ȳγx̂> - x̂_k <γ̇ȳx̂ + ȳγx̂̇> - <γ̇ȳ>), with
x̂̇ defined by the same rules from x̂'s definition, and σ̇ = <ẋx̂>, μ̇ = <ẋ> written in where they are
used (a tangent that is one mean is not given a row; <x̂> = 0 drops out, shown by the rules).  Three
lines and one definition where the expanded form takes ten.  ``jvp_through_hat`` writes the first
order's JVP of x the same way, γ_i x̂̇_i, x̂̇ then defined once for both; attention's VJPs, written
through its weights P and P̄ (``weights.py``), differentiate through Ṗ and the tangent of P̄.

Each tangent's definition is an equation of its own, derived by the chain rule (exact for every
size) and checked against the definition written out and differentiated, at random points; the
second-order result is checked, with every name written out, against the Hessian blocks contracted
with the tangents (``second._result``).  Where the VJP is written through no such name, or through
y with several inputs (y's tangent a sum of contributions), the expanded form is shown.
"""

from __future__ import annotations

import sympy as sp

from ...calculus.compact import HAT, OUTPUT, Compact, expand_named, name_in, tidy
from ...calculus.indices import canonical_dummies, substitute_indices
from ...calculus.pipeline import Derivation, InputGradient
from ...calculus.tangent import along, scaled_product_rule, tangent
from ...display.latex import VJP_PREFIX
from .equations import Equation, Equations
from .symbols import SHOWN_HAT, shown
from .text import label_part
from .weights import WEIGHT, WEIGHT_BAR, Weights, softmax_weights, through_weights, weight_at, weight_bar_at

RULES = ("tangent",)
"""The rule a tangent's definition is derived by (the chain rule along the tangents)."""


def tangent_form(eqs: Equations, derivation: Derivation, gradient: InputGradient) -> sp.Expr | None:
    """x̄̇ of ``gradient``'s input through the tangents of its VJP's names (each tangent's definition
    added to ``eqs`` before it, once per document), as displayed; None where there is no such form."""
    form = derivation.compact(gradient.input.name, "vjp")
    weights = softmax_weights(derivation) if form.through is None else None
    if weights is not None:
        return _through_weights(eqs, derivation, gradient, weights)
    if form.through is None or (form.through == OUTPUT and len(derivation.gradients) > 1):
        return None
    if form.through == HAT and SHOWN_HAT not in eqs.written_through:
        return None
    named = derivation.rewriter.named
    moving = {i.name for i in derivation.model.differentiable_inputs} | {q.name for q in named} | {form.through}
    name = VJP_PREFIX + gradient.input.name
    wrt = gradient.wrt_indices
    bar = sp.IndexedBase(name)[wrt] if wrt else sp.Symbol(name)
    result = scaled_product_rule(form.expr, moving, {q.name for q in named}, bar)
    eqs.written_through.setdefault(name, (_displayed(eqs, form.expr), wrt))
    return _displayed(eqs, _define_tangents(eqs, derivation, form, moving, result))


def _define_tangents(eqs: Equations, derivation: Derivation, form: Compact, moving: set[str],
                     result: sp.Expr) -> sp.Expr:
    """Add the definition of every named quantity's tangent ``result`` uses (and theirs), in the
    order of the model's named quantities, x̂ last; a tangent that is one mean (μ̇ = <ẋ>) is written
    in where it is used instead.  Returns ``result`` with those written in."""
    named = derivation.rewriter.named
    quantities = [(q.name, q.definition, q.free) for q in named]
    if form.through == HAT:
        quantities.append((HAT, form.definition, tuple(derivation.model.output_indices)))
    elif form.through == OUTPUT:  # y's tangent is the JVP stated above: named, not defined again
        jvp = derivation.compact(derivation.gradients[0].input.name, "jvp")
        eqs.written_through.setdefault(_shown_name(OUTPUT, eqs), (_displayed(eqs, jvp.expr),
                                                                   tuple(derivation.model.output_indices)))
    inline: dict[str, tuple[sp.Expr, tuple]] = {}
    shown_forms: dict[str, sp.Expr] = {}
    for quantity, definition, free in quantities:
        tidied = _tidied(_written_in(along(definition, moving), inline), derivation, form)
        if quantity != HAT and _one_mean(tidied, set(derivation.model.dims())):
            inline[quantity] = (tidied, free)
        else:
            shown_forms[quantity] = tidied
    result = _written_in(result, inline)
    needed = _needed(result, shown_forms)
    inputs = {i.name for i in derivation.model.differentiable_inputs}
    for quantity, definition, free in quantities:
        key = _shown_name(quantity, eqs)
        if quantity in needed and key not in eqs.written_through:
            entry = tangent(sp.IndexedBase(quantity)[free] if free else sp.Symbol(quantity))
            exact = along(expand_named(definition, named), inputs)
            _add(eqs, key, entry, _displayed(eqs, shown_forms[quantity]), exact, free)
    return result


def _written_in(expr: sp.Expr, inline: dict[str, tuple[sp.Expr, tuple]]) -> sp.Expr:
    """``expr`` with the tangents in ``inline`` replaced by their definitions (at the indices used)."""
    for quantity, (definition, free) in inline.items():
        name = "dot_" + quantity
        expr = expr.replace(lambda e, n=name: isinstance(e, sp.Indexed) and str(e.base.label) == n,
                            lambda e, d=definition, f=free: substitute_indices(d, f, tuple(e.indices)))
        expr = expr.xreplace({s: definition for s in expr.free_symbols if isinstance(s, sp.Symbol) and s.name == name})
    return expr


def _one_mean(expr: sp.Expr, sizes: set) -> bool:
    """Is ``expr`` a single sum divided by sizes (a mean, shown as one <...>)?"""
    factors = sp.Mul.make_args(expr)
    sums = [f for f in factors if isinstance(f, sp.Sum)]
    rest = [f for f in factors if not isinstance(f, sp.Sum)]
    return len(sums) == 1 and all(f.is_number or f.as_base_exp()[0] in sizes for f in rest)


def jvp_through_hat(eqs: Equations, derivation: Derivation, gradient: InputGradient) -> sp.Expr | None:
    """The JVP of an input the output reaches through x̂ only, as the output's derivative along x̂'s
    tangent (layernorm's γ_i x̂̇_i), x̂̇ defined before it; None for any other input or model."""
    form = derivation.compact(gradient.input.name, "vjp")
    if form.through != HAT or SHOWN_HAT not in eqs.written_through:
        return None
    rewriter = derivation.rewriter
    base = gradient.input.base
    assert form.definition is not None  # written through x-hat: its definition is known
    reaching = {a.base for a in expand_named(form.definition, rewriter.named).atoms(sp.Indexed)}
    if reaching & {i.base for i in derivation.model.differentiable_inputs} != {base}:
        return None  # x-hat moves with another input too (a gate): x-hat-dot is not this input's alone
    position = next((n for n, (b, inverse, _, _) in enumerate(rewriter.substitutions)
                     if b == base and any(str(a.base.label) == HAT for a in inverse.atoms(sp.Indexed))), None)
    output = None if position is None else rewriter.through(rewriter.output.definition, position)
    if output is None or output.has(base):
        return None
    result = along(output, {HAT})
    moving = {i.name for i in derivation.model.differentiable_inputs} | {q.name for q in rewriter.named} | {HAT}
    return _displayed(eqs, _define_tangents(eqs, derivation, form, moving, result))


def _through_weights(eqs: Equations, derivation: Derivation, gradient: InputGradient,
                     weights: Weights) -> sp.Expr | None:
    """Attention's x̄̇: its VJP through P and P̄ (``weights.py``) along the tangents, with Ṗ and the
    tangent of P̄ defined (through P again: Z cancels)."""
    expr = through_weights(derivation.compact(gradient.input.name, "vjp").expr, weights)
    if expr is None:
        return None
    inputs = {i.name for i in derivation.model.differentiable_inputs}
    result = along(expr, inputs | {WEIGHT, WEIGHT_BAR})
    normaliser, query, key = weights.normaliser, weights.query, weights.key
    named = ((WEIGHT, weight_at(weights, query, key)), (WEIGHT_BAR, weight_bar_at(weights, query, key)))
    for name, definition in named:
        key_name = "dot_" + name
        if key_name in eqs.written_through or not _uses_tangent(result, name):
            continue
        moved = along(definition, inputs | {normaliser.name})
        moved = moved.replace(lambda e: isinstance(e, sp.Indexed) and str(e.base.label) == "dot_" + normaliser.name,
                              lambda e: along(normaliser.written_at(tuple(e.indices)), inputs))
        display = through_weights(moved, weights) if moved.has(sp.exp) else tidy(moved)
        if display is None:
            return None
        exact = along(expand_named(definition, derivation.rewriter.named), inputs)
        entry = tangent(sp.IndexedBase(name)[query, key])
        _add(eqs, key_name, entry, _displayed(eqs, display), exact, (query, key))
    return _displayed(eqs, result)


def _needed(result: sp.Expr, definitions: dict[str, sp.Expr]) -> set[str]:
    """The named quantities whose tangents ``result`` uses, directly or through another's definition."""
    needed: set[str] = set()
    frontier = [result]
    while frontier:
        expr = frontier.pop()
        for quantity, definition in definitions.items():
            if quantity not in needed and _uses_tangent(expr, quantity):
                needed.add(quantity)
                frontier.append(definition)
    return needed


def _uses_tangent(expr: sp.Expr, quantity: str) -> bool:
    name = "dot_" + quantity
    return any(str(e.base.label) == name for e in expr.atoms(sp.Indexed)) or sp.Symbol(name) in expr.free_symbols


def _tidied(expr: sp.Expr, derivation: Derivation, form: Compact) -> sp.Expr:
    """A tangent's definition written through the named quantities and x̂ where it can be, tidied,
    each sum that vanishes identically (<x̂> = 0: the rules show it once written out) dropped."""
    rewriter = derivation.rewriter
    expr = name_in(canonical_dummies(expr), rewriter.named)
    if form.through == HAT:
        for position, (_, inverse, _, _) in enumerate(rewriter.substitutions):
            if any(str(a.base.label) == HAT for a in inverse.atoms(sp.Indexed)):
                expr = rewriter.through(expr, position) or expr
                break
    vanishing = {s: sp.S.Zero for s in expr.atoms(sp.Sum) if _vanishes(s, derivation, form)}
    return tidy(expr.xreplace(vanishing))


def _vanishes(expr: sp.Sum, derivation: Derivation, form: Compact) -> bool:
    """Does the sum simplify to 0 by the engine's rules once x̂ and the named quantities are written out?"""
    if form.through == HAT and form.definition is not None:
        indices = tuple(derivation.model.output_indices)
        expr = expr.replace(lambda e: isinstance(e, sp.Indexed) and str(e.base.label) == HAT,
                            lambda e: substitute_indices(form.definition, indices, tuple(e.indices)))
    return tidy(expand_named(expr, derivation.rewriter.named)) == 0


def _shown_name(quantity: str, eqs: Equations) -> str:
    """The tangent's name as the document writes it (x̂'s is x̂-dot, y's the output's)."""
    return "dot_" + {HAT: SHOWN_HAT, OUTPUT: eqs.output_name}.get(quantity, quantity)


def _displayed(eqs: Equations, expr: sp.Expr) -> sp.Expr:
    """``expr`` in the document's names, the tangents of x̂ and y included."""
    renamed = {"dot_" + HAT: _shown_name(HAT, eqs), "dot_" + OUTPUT: _shown_name(OUTPUT, eqs)}
    expr = expr.replace(lambda e: isinstance(e, sp.Indexed) and str(e.base.label) in renamed,
                        lambda e: sp.IndexedBase(renamed[str(e.base.label)])[e.indices])
    return eqs.shown(shown(eqs, expr))


def _add(eqs: Equations, key: str, entry: sp.Expr, display: sp.Expr, exact: sp.Expr, free: tuple) -> Equation:
    """The tangent's definition as an equation, checked with the names before it written out."""
    lhs = _displayed(eqs, entry)
    eqs.written_through[key] = (display, free)
    label = f"eq:{label_part(eqs.model.name)}:where-{label_part(key)}"
    return eqs.add(label, "tangent", lhs, exact, shown_lhs=lhs, shown_rhs=display, rules=RULES, derived=True,
                   means=True)
