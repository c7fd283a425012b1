"""Read a hand-written formula in an operator's own names into the engine's SymPy objects.

Inputs are ``IndexedBase`` arrays (``x[k]``), the cotangent is ``dy[i]``, tangents ``dot_x[k]``, the
output ``y[i]``; sizes, parameters (by name or symbol name) and the model's named intermediates
(``r``, ``mu`` ...) resolve to the very objects the engine uses.  Helpers: ``sum(f, j)`` and
``mean(f, j)`` over the whole axis ``j`` indexes, ``delta(i, k)``, ``sigmoid(t)``.  The text is read
by ``derive.model.reader`` (an AST walk over these names and SymPy's functions), never evaluated.  Every
problem is a ``FormulaError``.
"""

from __future__ import annotations

import itertools
import keyword
from collections.abc import Mapping

import sympy as sp
from sympy.core.function import AppliedUndef

from ..calculus.indices import free_indices, substitute_index
from ..calculus.pipeline import COTANGENT, tangent_name
from ..calculus.validate import ModelError, check_indexing, plain_symbols
from ..errors import FormulaError
from ..model import OperatorModel
from ..model.reader import Grammar, ReadError, SyntaxProblem, read

OUTPUT = "y"
MATH_NAMES = ("Sum", "KroneckerDelta", "sqrt", "exp", "log", "sin", "cos", "tan", "tanh", "sinh", "cosh",
              "atan", "asinh", "erf", "Abs", "sign", "Max", "Min", "Piecewise", "Heaviside", "pi", "E")
MATH = {name: getattr(sp, name) for name in (*MATH_NAMES, "Rational")}
_RENAMES = itertools.count()


class AxisSum(sp.Expr):
    """``sum(f, j)`` / ``mean(f, j)`` before the range of ``j`` is known: args (f, j, is_mean)."""

    is_commutative = True


def axis_sum(body: sp.Expr, *indices: sp.Basic) -> sp.Expr:
    if not indices:
        raise FormulaError("sum(f, j) needs the index it sums over, e.g. sum(dy[j]*x[j], j)")
    for var in indices:
        body = AxisSum(body, var, sp.false)
    return body


def axis_mean(body: sp.Expr, *indices: sp.Basic) -> sp.Expr:
    if not indices:
        raise FormulaError("mean(f, j) needs the index it averages over, e.g. mean(x[j]**2, j)")
    for var in indices:
        body = AxisSum(body, var, sp.true)
    return body


def sigmoid(value: sp.Expr) -> sp.Expr:
    return 1 / (1 + sp.exp(-value))


HELPERS = {"sum": axis_sum, "mean": axis_mean, "delta": sp.KroneckerDelta, "sigmoid": sigmoid}


def arrays(model: OperatorModel) -> dict[str, tuple[sp.Expr, ...]]:
    """Every array a formula may index, with its axis sizes."""
    axes = {inp.name: inp.dims for inp in model.inputs}
    axes.update({tangent_name(inp.name): inp.dims for inp in model.inputs})
    axes.setdefault(COTANGENT, model.output_dims)
    axes.setdefault(OUTPUT, model.output_dims)
    return axes


def names(model: OperatorModel, free: tuple[sp.Idx, ...]) -> dict[str, object]:
    """The local namespace of a formula for ``model`` with the free indices ``free``."""
    local: dict[str, object] = dict(HELPERS)
    for name, dims in arrays(model).items():
        local[name] = sp.IndexedBase(name) if dims else sp.Symbol(name)
    for inp in model.inputs:  # the engine writes a scalar input as its bare IndexedBase
        local[inp.name] = inp.base
    local.update({str(d): d for d in model.dims()})
    for param in model.params:
        if param.symbol is not None:
            local[param.name] = local[str(param.symbol)] = param.symbol
    for name, definition in model.where:
        local[name] = _per_free_index(fresh_dummies(definition), free)
    local.update({str(i): i for i in free})
    return local


def _per_free_index(definition: sp.Expr, free: tuple[sp.Idx, ...]) -> sp.Expr:
    """A quantity per channel (batchnorm's ``mu`` over ``x[j, c, t]``) at the formula's own free index
    over that axis (``p`` in ``dx[k, p, q]``), when exactly one free index runs over it."""
    for index in sorted(free_indices(definition) - set(free), key=str):
        same_range = [f for f in free if (f.lower, f.upper) == (index.lower, index.upper)]
        if len(same_range) == 1:
            definition = substitute_index(definition, index, same_range[0])
    return definition


def parse(text: str, model: OperatorModel, free: tuple[sp.Idx, ...], what: str = "formula",
          let: Mapping[str, str] | None = None) -> sp.Expr:
    """``text`` as an expression of the engine's objects, with only ``free`` as free indices.

    ``let`` names intermediates of the claim's own (``rstd`` -> ``1/sqrt(mean(x[j]**2, j) + eps)``),
    each read like the formula and usable in it and in the ones after it."""
    local = names(model, free)
    for name, definition in (let or {}).items():
        _check_let_name(name, local)
        local[name] = fresh_dummies(_read(definition, model, free, local, f"--let {name}"))
    shown = text if len(text) <= 200 else text[:197] + "..."  # a message stays readable
    return _read(text, model, free, local, f"{what} {shown!r}")


def _read(text: str, model: OperatorModel, free: tuple[sp.Idx, ...], local: dict[str, object],
          context: str) -> sp.Expr:
    context = f"the {context}"
    try:
        expr = read(text, grammar(local))
    except SyntaxProblem as error:
        raise FormulaError(f"cannot parse {context}: {error}") from None
    except ReadError as error:
        hint = ("; write Piecewise((a, condition), (b, True))" if ("IfExp" in str(error) or "BoolOp" in str(error))
                else f"; use SymPy's ({', '.join(n for n in MATH_NAMES if n not in ('pi', 'E'))}) or the helpers "
                     f"{', '.join(HELPERS)}" if str(error).startswith("unknown function") else "")
        raise FormulaError(f"cannot read {context}: {error}{hint}") from None
    if not isinstance(expr, sp.Expr):
        raise FormulaError(f"{context} is not an expression (it reads as {type(expr).__name__})")
    axes = arrays(model)
    expr = bind_sums(resolve_axis_sums(expr, axes, context), context)
    _check_names(expr, model, free, local, context)
    try:
        check_indexing(expr, axes, context)
    except ModelError as error:
        raise FormulaError(str(error)) from None
    return substitute_output(expr, model)


def _check_let_name(name: str, local: Mapping[str, object]) -> None:
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("__"):
        raise FormulaError(f"--let {name}: the name must be an identifier (letters, digits, _)")
    if name in local or name in MATH:
        raise FormulaError(f"--let {name}: {name} is already a name of the formula; choose another")


def grammar(local: Mapping[str, object]) -> Grammar:
    """What a formula may say: ``local``'s names, SymPy's functions in ``MATH_NAMES``, arithmetic."""
    every = {**MATH, **local}
    calls = {k: v for k, v in every.items() if isinstance(v, type) or (callable(v) and not isinstance(v, sp.Basic))}
    names = {k: v for k, v in every.items() if k not in calls}
    return Grammar(names=names, calls=calls, unknown_name=sp.Symbol, arithmetic=True, constant=_number,
                   language="a formula")


def read_number(text: str) -> sp.Expr:
    """A number written with digits, arithmetic, ``pi``, ``E`` and SymPy's functions (``1/sqrt(2)``);
    decimals are read exactly (0.1 as 1/10)."""
    exact = Grammar(names={k: v for k, v in MATH.items() if isinstance(v, sp.Basic)},
                    calls={k: v for k, v in MATH.items() if not isinstance(v, sp.Basic)},
                    arithmetic=True, constant=lambda value: _number(value, exact=True), language="a number")
    try:
        value = read(text, exact)
    except ReadError as error:
        raise FormulaError(str(error)) from None
    if not isinstance(value, sp.Expr) or not value.is_number:
        raise FormulaError(f"{text!r} is not a number")
    return value


def _number(value: object, exact: bool = False) -> sp.Basic:
    if isinstance(value, bool):
        return sp.true if value else sp.false
    if isinstance(value, int):
        return sp.Integer(value)
    return sp.Rational(repr(value)) if exact else sp.Float(repr(value))


def resolve_axis_sums(expr: sp.Expr, axes: Mapping[str, tuple], context: str) -> sp.Expr:
    """Each ``sum(f, j)`` as ``Sum(f, (j, 0, d - 1))`` where ``d`` is the axis ``j`` indexes in ``f``."""
    while expr.has(AxisSum):
        node = next(n for n in sp.postorder_traversal(expr) if isinstance(n, AxisSum))
        body, var, is_mean = node.args
        if not isinstance(var, (sp.Symbol, sp.Idx)):
            raise FormulaError(f"{context}: sum over {var}, which is not an index name")
        dims = {axes[str(e.base)][p] for e in body.atoms(sp.Indexed) if str(e.base) in axes
                for p, v in enumerate(e.indices) if v == var and p < len(axes[str(e.base)])}
        if len(dims) != 1:
            found = "indexes no array" if not dims else f"indexes axes of different sizes ({', '.join(map(str, dims))})"
            raise FormulaError(f"{context}: in sum over {var}, {var} {found}; write Sum(f, ({var}, 0, n - 1))")
        (dim,) = dims
        total = sp.Sum(body, (var, 0, dim - 1))
        expr = expr.xreplace({node: total / dim if is_mean else total})
    return expr


def bind_sums(expr: sp.Expr, context: str) -> sp.Expr:
    """Make every summation variable an ``Idx`` over its sum's limits (as the engine writes them)."""
    if not expr.args or isinstance(expr, (sp.Indexed, sp.Idx)):
        return expr
    expr = expr.func(*[bind_sums(arg, context) for arg in expr.args])
    if not isinstance(expr, sp.Sum):
        return expr
    body, limits = expr.function, []
    for limit in expr.limits:
        if len(limit) != 3:
            raise FormulaError(f"{context}: {expr} needs limits (index, first, last)")
        var, lower, upper = limit
        if not isinstance(var, (sp.Symbol, sp.Idx)):
            raise FormulaError(f"{context}: {expr} sums over {var}, which is not an index name")
        new = sp.Idx(str(var.label if isinstance(var, sp.Idx) else var), (lower, upper))
        body = substitute_index(body, var, new) if isinstance(var, sp.Idx) else body.xreplace({var: new})
        limits.append((new, lower, upper))
    return sp.Sum(body, *limits)


def _check_names(expr: sp.Expr, model: OperatorModel, free: tuple[sp.Idx, ...], local: dict, context: str) -> None:
    functions = sorted({str(f.func) for f in expr.atoms(AppliedUndef)})
    if functions:
        known = ", ".join(n for n in MATH_NAMES if n not in ("pi", "E"))
        raise FormulaError(f"{context}: unknown function {', '.join(functions)}; use SymPy's ({known}) "
                           f"or the helpers {', '.join(HELPERS)}")
    index_like = {v for e in expr.atoms(sp.Indexed) for i in e.indices for v in i.atoms(sp.Symbol)}
    declared = {value for value in local.values() if isinstance(value, sp.Symbol)}  # sizes, parameters, scalars
    for symbol in sorted(plain_symbols(expr) - declared, key=str):
        if symbol in index_like:
            raise FormulaError(f"{context}: index {symbol} is neither summed over nor a free index here "
                               f"(free: {', '.join(map(str, free)) or 'none'})")
        listed = ", ".join(sorted(n for n in local if n not in HELPERS))
        raise FormulaError(f"{context}: unknown name {symbol}; the names of {model.name} are {listed}")
    extra = sorted(str(i) for i in free_indices(expr) if i not in free)
    if extra:
        raise FormulaError(f"{context}: index {', '.join(extra)} is neither summed over nor a free index here "
                           f"(free: {', '.join(map(str, free)) or 'none'})")


def fresh_dummies(expr: sp.Expr) -> sp.Expr:
    """``expr`` with every summation index renamed to a name no formula uses (no capture on substitution)."""
    if not expr.args or not expr.has(sp.Sum):
        return expr
    expr = expr.func(*[fresh_dummies(arg) for arg in expr.args])
    if not isinstance(expr, sp.Sum):
        return expr
    body, limits = expr.function, []
    for var, lower, upper in expr.limits:
        new = sp.Idx(f"{var.label}_{next(_RENAMES)}", (lower, upper))
        body = substitute_index(body, var, new)
        limits.append((new, lower, upper))
    return sp.Sum(body, *limits)


def substitute_output(expr: sp.Expr, model: OperatorModel) -> sp.Expr:
    """Each entry ``y[a, b]`` (or ``y`` for a scalar output) as the model's output at ``a, b``."""
    def entry(indices: tuple) -> sp.Expr:
        value = fresh_dummies(model.output)
        holders = [sp.Dummy() for _ in indices]
        for idx, holder in zip(model.output_indices, holders):
            value = substitute_index(value, idx, holder)
        return value.xreplace(dict(zip(holders, indices)))

    if any(inp.name == OUTPUT for inp in model.inputs):  # an input called y hides the output
        return expr
    if not model.output_indices:
        return expr.xreplace({sp.Symbol(OUTPUT): entry(())})
    return expr.replace(lambda e: isinstance(e, sp.Indexed) and str(e.base) == OUTPUT, lambda e: entry(e.indices))

