"""Check a hand-derived gradient formula against the engine's derivation of an operator.

A claim is one formula for the Jacobian entry dy[i]/dx[k], the VJP entry dx[k], the JVP entry
dot_y[i] of one input, or the second-order entry dot_dx[k] (the VJP differentiated along the tangents
``dot_b`` of every input, the cotangent held fixed: the kernels' ``vjp_jvp``), which is compared with the
engine's and with the oracle's: the open derivatives of the model, worked out by plain ``sympy.diff``.
``check`` answers equal or not: symbolically where SymPy can show the
difference is zero, and always numerically at random points for several sizes (a counterexample,
with the sizes, the inputs and both values, when they differ).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field, replace

import sympy as sp

from ..calculus.concrete import Disagreement, compare, distinct_sizes, expand, random_point
from ..calculus.differentiate import Partial
from ..calculus.indices import canonical_dummies, free_indices, substitute_index
from ..calculus.pipeline import COTANGENT, Derivation, InputGradient, derive, tangent_name
from ..calculus.rules import simplify
from ..calculus.second import wrt_entry
from ..display.forms import readable
from ..display.notation import second_order_name
from ..errors import ClaimError
from ..model import OperatorModel, Param, dim_of, domains, registry
from ..model.functions import elementary
from .formula import FormulaError, parse, read_number

KINDS = ("jacobian", "vjp", "jvp", "vjp_jvp")
SIZES = (1, 2, 3, 4)
ENTRIES = 64
"""At most this many combinations of free index values are tried per size (drawn at random beyond)."""
SIMPLIFY_LIMIT = 400
"""Operation count above which the difference is not handed to ``sympy.simplify``."""


@dataclass(frozen=True)
class Verdict:
    """The answer to one claim, with everything needed to explain it."""

    equal: bool
    symbolic: bool
    """SymPy reduced derived - claimed to zero (False: it could not decide, or they differ)."""
    label: str
    sizes: tuple[int, ...]
    derived: sp.Expr
    claimed: sp.Expr
    difference: sp.Expr
    counterexample: Disagreement | None = None
    fixed: dict[str, str] = field(default_factory=dict)
    oracle: bool = False
    """The claim was also compared with the oracle's definition (a second-order claim)."""


def claim_label(model: OperatorModel, gradient: InputGradient, kind: str) -> str:
    out = f"[{', '.join(map(str, model.output_indices))}]" if model.output_indices else ""
    wrt = f"[{', '.join(map(str, gradient.wrt_indices))}]" if gradient.wrt_indices else ""
    name = gradient.input.name
    return {"jacobian": f"d y{out} / d {name}{wrt}", "vjp": f"d{name}{wrt}", "jvp": f"dot_y{out}",
            "vjp_jvp": f"{second_order_name(name, 'ascii')}{wrt}"}[kind]


def free_of(model: OperatorModel, gradient: InputGradient, kind: str) -> tuple[sp.Idx, ...]:
    return {"jacobian": (*model.output_indices, *gradient.wrt_indices), "vjp": gradient.wrt_indices,
            "jvp": model.output_indices, "vjp_jvp": gradient.wrt_indices}[kind]


def check(model: OperatorModel | Derivation, wrt: str, formula: str, kind: str = "vjp", *,
          fixed: dict[str, str] | None = None, let: dict[str, str] | None = None, diagonal: bool = False,
          sizes: tuple[int, ...] = SIZES, seed: int = 0) -> Verdict:
    """Compare ``formula`` with the derived ``kind`` entry for input ``wrt``.

    Equal when SymPy reduces the difference to zero, or when every numeric check (each axis its own
    length at each of ``sizes``) agrees and the difference is not shown to be non-zero elsewhere.
    ``fixed`` sets inputs and parameters to numbers, and formula-selecting parameters to one of
    their choices (``approximate="tanh"``); ``let`` names intermediates the formula uses."""
    if kind not in KINDS:
        raise ClaimError(f"unknown kind of claim {kind!r}; one of {', '.join(KINDS)}")
    fixed = dict(fixed or {})
    derivation = _with_choices(model, fixed)
    model = derivation.model
    gradient = _gradient(derivation, wrt)
    derived = derivation.vjp_jvp(wrt) if kind == "vjp_jvp" else getattr(gradient, kind)
    label = claim_label(model, gradient, kind)
    try:
        claimed = parse(formula, model, free_of(model, gradient, kind), f"{kind} formula", let=let)
    except FormulaError as error:
        raise ClaimError(str(error)) from None
    if diagonal:
        derived, claimed, label = _diagonal(model, gradient, kind, derived, claimed)
    values = _fixed_values(model, {k: v for k, v in fixed.items() if k not in _choice_params(model)})
    derived, claimed = _fix(derived, values), _fix(claimed, values)
    plain_derived, plain_claimed = elementary(derived), elementary(claimed)
    difference = symbolic_difference(plain_derived, plain_claimed)
    disagreement = compare(plain_derived, plain_claimed, model.dims(), sizes=sizes, seed=seed, distinct=True,
                           entries=ENTRIES, where=domains.declared(model))
    if disagreement is None and difference != 0:
        disagreement = nonzero_elsewhere(plain_derived, plain_claimed, elementary(difference), model.dims(),
                                         max(sizes) + 1, seed, domains.declared(model))
    if disagreement is None and kind == "vjp_jvp":  # and the oracle's: the open derivatives, by sympy.diff
        definition = elementary(_fix(second_order_definition(derivation, gradient), values))
        disagreement = compare(definition, plain_claimed, model.dims(), sizes=sizes, seed=seed, distinct=True,
                               entries=ENTRIES, where=domains.declared(model))
    shown = replace(model, where=tuple((name, _fix(d, values)) for name, d in model.where))

    def show(expr: sp.Expr) -> sp.Expr:
        return readable(name_sums(expr, shown) if values else expr, shown)

    return Verdict(
        equal=disagreement is None, symbolic=difference == 0, label=label, sizes=tuple(sizes),
        derived=show(derived), claimed=show(simplify(claimed)), difference=show(difference),
        counterexample=disagreement, fixed=fixed, oracle=kind == "vjp_jvp")


def second_order_definition(derivation: Derivation, gradient: InputGradient) -> sp.Expr:
    """``sum_b sum_m d/d b[m] (sum_i dy[i] d y[i] / d a[k]) dot_b[m]`` with the derivatives left open
    (``Partial``): what the engine's ``vjp_jvp`` must equal, evaluated by plain ``sympy.diff``."""
    model = derivation.model
    out = model.output_indices
    vjp = Partial(model.output, gradient.wrt) * (sp.IndexedBase(COTANGENT)[out] if out else sp.Symbol(COTANGENT))
    for idx in out:
        vjp = sp.Sum(vjp, (idx, idx.lower, idx.upper))
    total = sp.S.Zero
    for other in derivation.gradients:
        taken = {str(i.label) for i in gradient.wrt_indices} | {i.name for i in model.inputs}
        by = wrt_entry(other.input, vjp, taken)
        indices = tuple(by.indices) if isinstance(by, sp.Indexed) else ()
        term = Partial(vjp, by) * (sp.IndexedBase(tangent_name(other.input.name))[indices] if indices
                                   else sp.Symbol(tangent_name(other.input.name)))
        for idx in indices:
            term = sp.Sum(term, (idx, idx.lower, idx.upper))
        total += term
    return total


def nonzero_elsewhere(derived: sp.Expr, claimed: sp.Expr, difference: sp.Expr, dims: tuple[sp.Symbol, ...],
                      size: int, seed: int, where: dict | None = None) -> Disagreement | None:
    """A point beyond the sizes tested where a difference free of sums is not zero (``(n - 1)*(n - 2)``
    vanishes at n = 1, 2 only), as a counterexample with both sides' values; None if none is found."""
    if difference.has(sp.Sum) or difference.has(Partial):
        return None
    rng = random.Random(seed)
    fixed = distinct_sizes(dims, size)
    free = sorted(free_indices(derived) | free_indices(claimed), key=lambda i: str(i.label))
    for _ in range(3):
        at = {i: rng.randrange(int((i.upper - i.lower + 1).subs(fixed))) for i in free}
        gap = expand(difference, fixed, at)
        point = random_point(gap.free_symbols, rng, where=where)
        if abs(complex(gap.xreplace(point).evalf(30))) > 1e-12:
            left, right = expand(derived, fixed, at), expand(claimed, fixed, at)
            point = {**random_point(left.free_symbols | right.free_symbols, rng, where=where), **point}
            return Disagreement({str(d): v for d, v in fixed.items()}, {str(i.label): v for i, v in at.items()},
                                point, complex(left.xreplace(point).evalf(30)).real,
                                complex(right.xreplace(point).evalf(30)).real)
    return None


def _choice_params(model: OperatorModel) -> dict[str, Param]:
    """The parameters that select the formula (gelu's ``approximate``), by name."""
    return {p.name: p for p in model.params if p.symbol is None and p.choices}


def _with_choices(model: OperatorModel | Derivation, fixed: dict[str, str]) -> Derivation:
    """The derivation of ``model``, rebuilt first with every formula-selecting parameter ``fixed`` names."""
    base = model.model if isinstance(model, Derivation) else model
    params = _choice_params(base)
    choices = {}
    for name in (n for n in fixed if n in params):
        text, options = fixed[name], params[name].choices
        matches = [c for c in options if str(c).lower() == text.lower()]
        if not matches:
            raise ClaimError(f"--fix {name}={text}: {base.name}'s {name} is one of "
                             f"{', '.join(str(c) for c in options)}")
        choices[name] = matches[0]
    if not choices:
        return model if isinstance(model, Derivation) else derive(model)
    try:
        return derive(registry.rebuild(base, **choices))
    except Exception as error:  # a factory that cannot take the choice
        raise ClaimError(f"--fix {', '.join(f'{k}={v}' for k, v in choices.items())}: {base.name} cannot be "
                         f"built with it: {error}") from None


def _gradient(derivation: Derivation, wrt: str) -> InputGradient:
    for gradient in derivation.gradients:
        if gradient.input.name == wrt:
            return gradient
    known = ", ".join(g.input.name for g in derivation.gradients) or "none"
    raise ClaimError(f"{derivation.model.name} has no differentiable input {wrt!r} (differentiable: {known})")


def _diagonal(model: OperatorModel, gradient: InputGradient, kind: str, derived: sp.Expr,
              claimed: sp.Expr) -> tuple[sp.Expr, sp.Expr, str]:
    """Restrict a Jacobian claim to its diagonal: each wrt index set equal to its output index."""
    outputs, wrts = model.output_indices, gradient.wrt_indices
    if kind != "jacobian":
        raise ClaimError("--diagonal applies to a --jacobian claim (the entries with i = k)")
    if [dim_of(i) for i in outputs] != [dim_of(k) for k in wrts]:
        raise ClaimError(f"--diagonal needs the output axes ({', '.join(map(str, model.output_dims)) or 'none'}) "
                         f"to match the axes of {gradient.input.name} "
                         f"({', '.join(map(str, gradient.input.dims)) or 'none'})")
    for out, k in zip(outputs, wrts):
        derived, claimed = substitute_index(derived, k, out), substitute_index(claimed, k, out)
    at = ", ".join(map(str, outputs))
    return derived, claimed, f"d y[{at}] / d {gradient.input.name}[{at}]"


def _fixed_values(model: OperatorModel, fixed: dict[str, str]) -> dict[sp.Basic, sp.Expr]:
    """Parse ``name=value`` settings: an input (every entry; keyed by its IndexedBase) or a
    parameter (by name or symbol name; keyed by its Symbol), set to a number."""
    targets: dict[str, sp.Basic] = {inp.name: inp.base for inp in model.inputs}
    for param in model.params:
        if param.symbol is not None:
            targets.setdefault(param.name, param.symbol)
            targets.setdefault(str(param.symbol), param.symbol)
    values: dict[sp.Basic, sp.Expr] = {}
    for name, text in fixed.items():
        if name not in targets and any(p.name == name for p in model.params):
            raise ClaimError(f"--fix {name}={text}: {model.name}'s parameter {name} does not enter the formula "
                             "(it says how a kernel lays out or applies it), so it cannot be fixed")
        if name not in targets:
            known = ", ".join(sorted([*targets, *_choice_params(model)]))
            raise ClaimError(f"--fix {name}={text}: {model.name} has no input or parameter {name!r} (known: {known})")
        try:
            value = read_number(text)
        except FormulaError as error:
            raise ClaimError(f"--fix {name}={text}: the value must be a number ({error})") from None
        values[targets[name]] = value
    return values


def _fix(expr: sp.Expr, values: dict[sp.Basic, sp.Expr]) -> sp.Expr:
    """``expr`` with each fixed input's entries and each fixed parameter replaced by its value."""
    arrays = {base: value for base, value in values.items() if isinstance(base, sp.IndexedBase)}
    expr = expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base in arrays, lambda e: arrays[e.base])
    return expr.xreplace(values)


def name_sums(expr: sp.Expr, model: OperatorModel) -> sp.Expr:
    """Write each sum that a named intermediate determines in terms of that name.

    ``readable`` finds ``r = sqrt(S/n + eps)`` only in that exact form; once a value is fixed
    (eps = 0) SymPy rewrites it as ``sqrt(S)/sqrt(n)``, so here ``S`` itself becomes ``n r**2``.
    """
    expr = canonical_dummies(expr)
    for name, definition in model.where:
        symbol, definition = sp.Symbol(name, positive=True), canonical_dummies(definition)
        for value, target in ((definition, symbol), (definition ** 2, symbol ** 2)):
            sums = _outer_sums(value)
            if len(sums) != 1:
                continue
            holder = sp.Dummy()
            value = value.xreplace({sums[0]: holder})
            if value.is_polynomial(holder) and sp.degree(value, holder) == 1:
                slope, offset = sp.Poly(value, holder).all_coeffs()
                expr = expr.xreplace({sums[0]: (target - offset) / slope})
                break
    return expr


def symbolic_difference(derived: sp.Expr, claimed: sp.Expr) -> sp.Expr:
    """derived - claimed, as simplified as SymPy gets it (zero when it proves them equal).

    Sum bodies are expanded and the engine's rules pull factors out and name dummies canonically;
    then each remaining sum is treated as an opaque symbol and the rest goes to ``sympy.simplify``.
    """
    difference = simplify(expand_sums(derived - claimed))
    if difference == 0:
        return sp.S.Zero
    atoms = {s: sp.Dummy(f"sum{n}") for n, s in enumerate(_outer_sums(difference))}
    opaque = difference.xreplace(atoms)
    if sp.count_ops(opaque) > SIMPLIFY_LIMIT:  # sympy.simplify can take minutes on large expressions
        return difference
    reduced = sp.simplify(opaque).xreplace({v: k for k, v in atoms.items()})
    return min((reduced, difference), key=sp.count_ops)


def expand_sums(expr: sp.Expr) -> sp.Expr:
    """Every sum body multiplied out, so linearity can split and pull it apart."""
    return expr.replace(lambda e: isinstance(e, sp.Sum), lambda e: sp.Sum(sp.expand(e.function), *e.limits))


def _outer_sums(expr: sp.Expr) -> list[sp.Sum]:
    found: list[sp.Sum] = []
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Sum) and node not in found:
            found.append(node)
    return found


def point_by_array(model: OperatorModel, disagreement: Disagreement) -> list[tuple[str, str]]:
    """The counterexample's values grouped per array (``x = [0.1, -0.3]``), then scalars."""
    sizes = {d: disagreement.sizes[str(d)] for d in model.dims()}
    named = {str(symbol): float(value) for symbol, value in disagreement.point.items()}
    arrays = [(inp.name, inp.dims) for inp in model.inputs]
    arrays += [(tangent_name(inp.name), inp.dims) for inp in model.inputs]
    arrays += [(COTANGENT, model.output_dims)]
    rows, used = [], set()
    for name, dims in arrays:
        shape = tuple(int(sp.sympify(d).subs(sizes)) for d in dims)
        keys = ["_".join([name, *map(str, at)]) for at in _positions(shape)] if dims else [name]
        if not any(key in named for key in keys):
            continue
        used.update(keys)
        flat = [named.get(key) for key in keys]
        rows.append((name, _nested(flat, shape)))
    rows += [(key, f"{value:.6g}") for key, value in sorted(named.items()) if key not in used]
    return rows


def _positions(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    return list(itertools.product(*(range(s) for s in shape)))


def _nested(flat: list[float | None], shape: tuple[int, ...]) -> str:
    def fmt(v: float | None) -> str:
        return "_" if v is None else f"{v:.6g}"

    if not shape:
        return fmt(flat[0])
    if len(shape) == 1:
        return "[" + ", ".join(fmt(v) for v in flat) + "]"
    step = len(flat) // shape[0]
    return "[" + ", ".join(_nested(flat[r * step:(r + 1) * step], shape[1:]) for r in range(shape[0])) + "]"


def number(value: float, other: float) -> str:
    """A value for display; rounding noise of a 30-digit evaluation of an exact zero shows as 0."""
    return "0" if abs(value) < 1e-20 * max(1.0, abs(other)) else f"{value:.12g}"


def tested_sizes(model: OperatorModel, sizes: tuple[int, ...]) -> str:
    """``n = 1, 2, 3`` for one axis; ``(N, C, S) = (1, 2, 3), (2, 3, 4)`` when each axis has its own length."""
    dims = model.dims()
    if len(dims) <= 1:
        return f"{dims[0] if dims else 'n'} = {', '.join(map(str, sizes))}"
    rows = [tuple(distinct_sizes(dims, size).values()) for size in sizes]
    return f"({', '.join(map(str, dims))}) = " + ", ".join(f"({', '.join(map(str, row))})" for row in rows)


def report(verdict: Verdict, model: OperatorModel, formula: str) -> str:
    """The verdict as the lines ``derive claim`` prints."""
    given = ", ".join(f"{name} = {value}" for name, value in verdict.fixed.items())
    lines = [f"claimed  {verdict.label} = {formula}" + (f"   (with {given})" if given else ""),
             f"derived  {verdict.label} = {sp.sstr(verdict.derived)}"]
    if verdict.equal:
        how = ("SymPy reduces derived - claimed to 0" if verdict.symbolic
               else "SymPy could not decide it symbolically")
        oracle = " (and with the oracle: the open derivatives by plain sympy.diff)" if verdict.oracle else ""
        lines.append(f"EQUAL: {how}; they agree at random points{oracle} for {tested_sizes(model, verdict.sizes)}")
        return "\n".join(lines)
    bad = verdict.counterexample
    assert bad is not None  # a verdict of not equal carries its counterexample
    at = ", ".join(f"{k} = {v}" for k, v in {**bad.sizes, **bad.indices}.items())
    lines.append(f"NOT EQUAL: a counterexample at {at}:")
    rows = point_by_array(model, bad)
    width = max((len(name) for name, _ in rows), default=0)
    lines += [f"  {name:<{width}} = {values}" for name, values in rows]
    lines += [f"  derived = {number(bad.left, bad.right)}", f"  claimed = {number(bad.right, bad.left)}"]
    lines.append(f"difference (derived - claimed) = {sp.sstr(verdict.difference)}")
    return "\n".join(lines)
