"""Check an operator model (or a formula written in its names) before anything is derived from it.

``validate(model)`` raises ``ModelError`` naming the operator, its file and the offending part:
an index bound by no sum and no output position, an array indexed outside its axes, a name that
is neither an input, a size nor a parameter, a name that is not an identifier (``../../x``,
``class``), a declared layout that does not fit the model (the error names the layout that
does).  ``check_indexing`` is the index-range check alone.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping

import sympy as sp

from ..errors import ModelError
from ..model import LAYOUTS, Layout, OperatorModel, domains, entrywise, infer_layout, one_axis
from ..model.functions import max_over
from .indices import free_indices

Range = tuple[sp.Expr, sp.Expr]


def validate(model: OperatorModel) -> None:
    """Raise ``ModelError`` unless ``model`` is well formed."""
    where = f"operator {model.name!r}" + (f" ({model.source})" if model.source else "")
    _check_names(model)
    _check_declarations(model, where)
    _check_layout(model, where)
    _check_functions(model.output, where)
    axes = {inp.name: inp.dims for inp in model.inputs}
    check_indexing(model.output, axes, f"{where}: the output")
    for name, definition in model.where:
        check_indexing(definition, axes, f"{where}: the intermediate {name!r}")
    unbound = unbound_indices(model.output, model.output_indices)
    if unbound:
        positions = ", ".join(str(i) for i in model.output_indices) or "none, the output is a scalar"
        raise ModelError(
            f"{where}: the output uses index {', '.join(unbound)}, which no sum binds and which is "
            f"not an output position (output indices: {positions}); sum over it or add it to output_indices")
    known = {*model.dims(), *model.param_symbols.values()}
    unknown = sorted(str(s) for s in plain_symbols(model.output) if s not in known)
    if unknown:
        params = ", ".join(str(s) for s in model.param_symbols.values()) or "none"
        raise ModelError(
            f"{where}: the output uses {', '.join(unknown)}, which is neither an input, a size "
            f"({', '.join(str(d) for d in model.dims())}) nor a parameter symbol ({params}); "
            "declare it as a Param(name, default, symbol)")


def check_name(name: object, what: str, where: str) -> None:
    """Raise ``ModelError`` unless ``name`` can be a Python name, a file name and a LaTeX name as it
    is: an identifier, not a keyword (``class``, ``lambda``) and not a ``__dunder__``."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) or name.startswith("__"):
        why = ("a Python keyword" if isinstance(name, str) and keyword.iskeyword(name) else
               "reserved (it starts with __)" if isinstance(name, str) and name.isidentifier() else
               "not an identifier (letters, digits and _, not starting with a digit)")
        raise ModelError(f"{where}: the {what} name {name!r} is {why}; rename it")


def _check_names(model: OperatorModel) -> None:
    """Every name that reaches a kernel, a file name or a document: operator, inputs, parameters,
    sizes, indices, symbols and named intermediates."""
    where = f"operator {model.name!r}" + (f" ({model.source})" if model.source else "")
    check_name(model.name, "operator", where)
    for what, expr in (("the output", model.output), *((f"the intermediate {n!r}", d) for n, d in model.where)):
        if not isinstance(expr, (sp.Expr, int, float)):  # SymPy would parse (run) a string: never accepted
            raise ModelError(f"{where}: {what} is a {type(expr).__name__}, not a SymPy expression")
    for inp in model.inputs:
        check_name(inp.name, "input", where)
    for param in model.params:
        check_name(param.name, "parameter", where)
        for choice in param.choices:
            if isinstance(choice, str) and not re.fullmatch(r"[A-Za-z0-9_]+", choice):
                raise ModelError(f"{where}: the choice {choice!r} of parameter {param.name!r} is not "
                                 "made of letters, digits and _; rename it")
    for name, _ in model.where:
        check_name(name, "intermediate", where)
    for expr in (model.output, *(d for _, d in model.where), *model.dims(), *model.output_indices,
                 *(p.symbol for p in model.params if p.symbol is not None)):
        for atom in (expr.atoms(sp.Symbol, sp.Idx, sp.IndexedBase) if isinstance(expr, sp.Basic) else ()):
            label = atom.label if isinstance(atom, (sp.Idx, sp.IndexedBase)) else atom
            check_name(getattr(label, "name", str(label)), "symbol" if isinstance(atom, sp.Symbol) else "index"
                       if isinstance(atom, sp.Idx) else "array", where)


def _check_functions(expr: sp.Expr, where: str) -> None:
    """A Piecewise needs an otherwise-branch (a kernel must have a value everywhere); max_over
    needs an index to run over."""
    for piece in expr.atoms(sp.Piecewise):
        if piece.args[-1][1] != sp.true:
            raise ModelError(f"{where}: {piece} has no otherwise-branch; end it with (value, True)")
    for maximum in expr.atoms(max_over):
        if not isinstance(maximum.args[1], sp.Idx) or maximum.args[1].lower is None:
            raise ModelError(f"{where}: in {maximum}, {maximum.args[1]} is not an index; write max_over(f, j) "
                             f"with j = index('j', size)")


def _check_declarations(model: OperatorModel, where: str) -> None:
    names = [inp.name for inp in model.inputs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ModelError(f"{where}: input {', '.join(repeated)} is declared more than once")
    for inp in model.inputs:
        domains.check(inp.domain, f"{where}: input {inp.name!r}")
    for param in model.params:
        if param.domain is not None:
            domains.check(param.domain, f"{where}: parameter {param.name!r}")
    for idx in model.output_indices:
        if not isinstance(idx, sp.Idx) or idx.lower is None:
            raise ModelError(f"{where}: output index {idx} needs a range: write index({str(idx)!r}, size)")
        if idx.lower != 0:
            raise ModelError(f"{where}: output index {idx} must start at 0 (it runs over {idx.lower}..{idx.upper})")
    labels = [str(i) for i in model.output_indices]
    if len(set(labels)) != len(labels):
        raise ModelError(f"{where}: output indices {', '.join(labels)} repeat a name")


def _check_layout(model: OperatorModel, where: str) -> None:
    """A declared layout must fit the model; the error names the one that does."""
    layout = model.layout
    problem = (f"there is no layout {layout.kind!r} (the layouts: {', '.join(LAYOUTS)})"
               if layout.kind not in LAYOUTS else layout_problem(model))
    if problem:
        raise ModelError(f"{where}: {_written(layout)} does not fit: {problem}; "
                         f"use {_written(infer_layout(model))}, or declare no layout to have it inferred")


def layout_problem(model: OperatorModel) -> str:
    """Why the model's layout does not fit it ("" when it does)."""
    kind, layout, inputs = model.layout.kind, model.layout, model.inputs
    params = [p.name for p in model.params]
    missing = [name for name in (layout.param, layout.keepdims) if name is not None and name not in params]
    if missing:
        return (f"it names parameter {missing[0]!r}, which the model does not have "
                f"(its parameters: {', '.join(params) or 'none'})")
    if kind in ("axis", "groups") and layout.param is None:
        return f"layout {kind!r} needs the name of its parameter"
    if kind == "elementwise" and not entrywise(model):
        return "each output entry must use the same entry of every input and no sum"
    if kind == "axis" and not one_axis(model):
        return "every input must have the same single axis (the parameter says which axis of the array it is)"
    if kind == "flatten" and not (one_axis(model) and not model.output_indices):
        return "every input must have the same single axis and the output must be one number"
    rank = {"channels": 3, "groups": 4}.get(kind)
    if rank and len(inputs[0].dims) != rank:
        axes = "N, C, S" if rank == 3 else "N, G, C/G, S"
        return f"the first input must have {rank} axes ({axes}), not {len(inputs[0].dims)}"
    return ""


def _written(layout: Layout) -> str:
    arguments = [repr(a) for a in (layout.kind, layout.param, layout.keepdims) if a is not None]
    return f"Layout({', '.join(arguments)})"


def unbound_indices(expr: sp.Expr, allowed: tuple[sp.Idx, ...]) -> list[str]:
    """Names of the indices free in ``expr`` that are not in ``allowed``."""
    return sorted(str(i) for i in free_indices(expr) if i not in allowed)


def plain_symbols(expr: sp.Basic) -> set[sp.Symbol]:
    """The ``Symbol`` leaves of ``expr`` that are not array names or index labels."""
    if isinstance(expr, sp.Indexed):
        return set().union(*(plain_symbols(i) for i in expr.indices))
    if isinstance(expr, (sp.IndexedBase, sp.Idx)):
        return set()
    if isinstance(expr, sp.Symbol):
        return {expr}
    return set().union(*(plain_symbols(arg) for arg in expr.args)) if expr.args else set()


def check_indexing(expr: sp.Expr, axes: Mapping[str, tuple[sp.Expr, ...]], where: str) -> None:
    """Raise ``ModelError`` if an array in ``expr`` is unknown, has the wrong number of indices, or
    is indexed by an expression that can leave its axis (``x[i + 1]``, or ``x[j]`` with ``j`` over
    another size).  A summation index ranges over its sum's limits, a free one over its declared range.
    """
    _walk(expr, axes, where, {})


def _walk(expr: sp.Basic, axes: Mapping[str, tuple], where: str, bound: dict[sp.Basic, Range]) -> None:
    if isinstance(expr, sp.Indexed):
        _check_entry(expr, axes, where, bound)
        return
    if isinstance(expr, sp.IndexedBase):
        name = str(expr)
        if name not in axes:
            raise ModelError(f"{where}: {name} is not an array of this operator (known: {', '.join(axes)})")
        if axes[name]:
            raise ModelError(f"{where}: {name} is used without indices; write an entry such as "
                             f"{name}[{', '.join('i' * len(axes[name]))}]")
        return
    if isinstance(expr, sp.Sum):
        inner = dict(bound)
        for limit in expr.limits:
            if len(limit) != 3:
                raise ModelError(f"{where}: {expr} needs limits (index, first, last)")
            var, lower, upper = limit
            if not isinstance(var, sp.Idx):
                raise ModelError(f"{where}: the summation variable {var} of {expr} must be an index: "
                                 f"write {var} = index({str(var)!r}, size)")
            _walk(lower, axes, where, bound)
            _walk(upper, axes, where, bound)
            inner[var] = (lower, upper)
        _walk(expr.function, axes, where, inner)
        return
    for arg in expr.args:
        _walk(arg, axes, where, bound)


def _check_entry(entry: sp.Indexed, axes: Mapping[str, tuple], where: str, bound: dict[sp.Basic, Range]) -> None:
    name = str(entry.base)
    if name not in axes:
        raise ModelError(f"{where}: {name} is not an array of this operator (known: {', '.join(axes)})")
    dims = axes[name]
    if len(entry.indices) != len(dims):
        axes_text = f"{len(dims)} {'axis' if len(dims) == 1 else 'axes'} ({', '.join(map(str, dims)) or 'a scalar'})"
        raise ModelError(f"{where}: {entry} has {len(entry.indices)} indices but {name} has {axes_text}")
    for position, (value, dim) in enumerate(zip(entry.indices, dims)):
        if value.is_number and dim != 1:
            raise ModelError(f"{where}: in {entry}, the literal index {value} picks one entry of axis {position} "
                             f"of {name} (length {dim}); only an axis of length 1 may be indexed by a number: "
                             f"declare it Input({name!r}, (..., 1, ...)), or an input with no axes, written {name}[()]")
        low, high = index_range(value, bound, where, entry)
        inside = _provably_nonnegative(low) and _provably_nonnegative(dim - 1 - high)
        if not inside:
            raise ModelError(
                f"{where}: in {entry}, the index {value} runs over {low}..{high}, outside axis {position} "
                f"of {name}, which runs over 0..{dim - 1}")


def index_range(value: sp.Expr, bound: dict[sp.Basic, Range], where: str, entry: sp.Basic) -> Range:
    """The least and greatest value of an index expression (linear in its indices)."""
    if value in bound:
        return bound[value]
    if isinstance(value, sp.Idx):
        if value.lower is None:
            raise ModelError(f"{where}: in {entry}, index {value} has no range; write index({str(value)!r}, size)")
        return value.lower, value.upper
    if value.is_Integer:
        return value, value
    atoms = [a for a in value.atoms(sp.Idx, sp.Symbol) if a in bound or isinstance(a, sp.Idx)]
    poly = sp.Poly(value, *atoms) if atoms else None
    if poly is None or poly.total_degree() > 1:
        raise ModelError(f"{where}: in {entry}, the index {value} is not a plain index over the axis")
    low = high = poly.coeff_monomial(1)
    for atom in atoms:
        coefficient = poly.coeff_monomial(atom)
        first, last = index_range(atom, bound, where, entry)
        if coefficient.is_number and coefficient < 0:
            first, last = last, first
        elif not (coefficient.is_number and coefficient > 0):
            raise ModelError(f"{where}: in {entry}, the index {value} is not a plain index over the axis")
        low, high = low + coefficient * first, high + coefficient * last
    return sp.expand(low), sp.expand(high)


def _provably_nonnegative(value: sp.Expr) -> bool:
    return bool(sp.simplify(value).is_nonnegative)
