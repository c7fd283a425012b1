"""The independent oracle: a model expanded into scalar symbols at concrete sizes, differentiated
with plain ``sympy.diff``, and evaluated numerically.

Nothing here uses the engine's differentiator, its contraction or its printers.  ``concrete`` (for
exact comparisons) expands a model's entry by writing each definite sum out term by term, then
SymPy's own ``doit``; ``expanded`` (for numbers) with ``calculus.concrete.expander``, which writes
every finite sum out once per row (every entry ``x[2, 0]`` a plain symbol ``x_2_0``), ten times
faster; activation functions become their elementary definitions, and the Jacobian is
``sympy.diff`` of each output entry by each input entry.  ``Expanded`` holds the output and the
Jacobian once per size assignment and evaluates them on whole batches of numbers (``numeric``:
NumPy on the expression DAG, every shared subexpression once, no printing), so the proof
(``derive.proof.kernel``) and the tests compare kernels with it cheaply.  Second derivatives: the
Hessian by ``sympy.diff`` of the Jacobian (``hessian``), and its product with a direction by forward
mode over the Jacobian's DAG (``along``: the same rules on arrays, no larger expression built).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp
from scipy import special

from ..calculus.concrete import expander
from ..model import OperatorModel
from ..model.functions import elementary


def scalar(expr: sp.Expr) -> sp.Expr:
    """Expand every finite sum and turn each entry x[2, 0] into a plain symbol x_2_0; activation
    functions become their elementary definitions, so plain sympy.diff differentiates them."""
    expr = written_out(elementary(expr)).doit()
    return expr.replace(lambda e: isinstance(e, sp.Indexed),
                        lambda e: sp.Symbol("_".join([str(e.base)] + [str(i) for i in e.indices])))


def written_out(expr: sp.Expr) -> sp.Expr:
    """Every sum with integer limits as the plain addition of its terms (the variable replaced by
    each value in turn, innermost sum first), as SymPy's ``Sum.doit`` ends up doing for a definite
    sum, without the closed forms it tries first (``apart`` and a ``subs`` per term: most of the time)."""
    if not expr.args or not expr.has(sp.Sum):
        return expr
    args = [written_out(arg) for arg in expr.args]
    if not isinstance(expr, sp.Sum):
        return expr.func(*args)
    body, limits = args[0], expr.limits
    for position, (var, lower, upper) in enumerate(limits):
        if not (lower.is_Integer and upper.is_Integer) or upper < lower - 1:  # left to doit (Karr's convention)
            return sp.Sum(body, *limits[position:])
        # subs where a sum is left (it may bind a variable of that name), else the quicker xreplace
        at = [sp.Integer(v) for v in range(int(lower), int(upper) + 1)]
        body = sp.Add(*[written_out(body.subs(var, v) if body.has(sp.Sum) else body.xreplace({var: v})) for v in at])
    return body


def plain(idx: sp.Idx) -> sp.Symbol:
    return sp.Symbol(str(idx.label), integer=True)


class label(sp.Function):
    """A class-label entry target[b] as a fixed integer once b and the class count C are known."""

    @classmethod
    def eval(cls, b, classes):
        return sp.Integer((int(b) + 1) % int(classes)) if b.is_Integer and classes.is_Integer else None


def concrete(expr: sp.Expr, sizes: dict, values: dict, labels: dict[str, sp.Symbol] | None = None) -> sp.Expr:
    """Indices as plain integer symbols; fix the axis sizes, then the free indices; integer
    (index-domain) inputs named in ``labels`` (with the axis size they index into) get fixed labels."""
    expr = _sized(expr, tuple(sizes.items()), tuple((labels or {}).items()))
    return scalar(expr.subs({plain(idx): value for idx, value in values.items()}))


@functools.lru_cache(maxsize=256)
def _sized(expr: sp.Expr, sizes: tuple, labels: tuple) -> sp.Expr:
    """The part of ``concrete`` that does not depend on the free indices' values (done once)."""
    by_base = dict(labels)
    expr = expr.xreplace({i: plain(i) for i in expr.atoms(sp.Idx)})
    expr = expr.replace(lambda e: isinstance(e, sp.Indexed) and str(e.base) in by_base,
                        lambda e: label(*e.indices, by_base[str(e.base)]))
    return expr.subs(dict(sizes))


def entry(base: str, at: tuple[int, ...]) -> sp.Symbol:
    return sp.Symbol("_".join([base, *(str(v) for v in at)]))


def shape(dims: tuple[sp.Expr, ...], sizes: dict) -> tuple[int, ...]:
    return tuple(int(sp.sympify(d).subs(sizes)) for d in dims)


def numeric(expr: sp.Basic, values: dict[str, np.ndarray], memo: dict | None = None):
    """``expr`` evaluated on NumPy arrays (symbols by name), each distinct subexpression once."""
    memo = {} if memo is None else memo
    if expr in memo:
        return memo[expr]
    value: Any
    if expr.is_Number or isinstance(expr, sp.NumberSymbol):
        value = float(expr)
    elif expr in (sp.true, sp.false):
        value = bool(expr)
    elif expr.is_Symbol:
        if expr.name not in values:
            raise ValueError(f"the oracle has no value for {expr.name}")
        value = values[expr.name]
    elif isinstance(expr, sp.Piecewise):
        conditions = [np.asarray(numeric(c, values, memo), dtype=bool) for _, c in expr.args]
        value = np.select(conditions, [numeric(e, values, memo) for e, _ in expr.args], np.nan)
    else:
        args = [numeric(a, values, memo) for a in expr.args]
        function = _ARRAY_FUNCTIONS.get(type(expr).__name__) or _relation(expr)
        if function is None:
            raise ValueError(f"the oracle cannot evaluate {type(expr).__name__}")
        value = function(*args)
    memo[expr] = value
    return value


def _relation(expr: sp.Basic):
    if isinstance(expr, sp.core.relational.Relational):
        return _RELATIONS[expr.rel_op]
    return None


_RELATIONS = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal,
              "==": np.equal, "!=": np.not_equal}
_ARRAY_FUNCTIONS = {
    "Add": lambda *a: functools.reduce(np.add, a), "Mul": lambda *a: functools.reduce(np.multiply, a),
    "Pow": np.power, "exp": np.exp, "log": np.log, "sin": np.sin, "cos": np.cos, "tan": np.tan,
    "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh, "erf": special.erf, "Abs": np.abs, "sign": np.sign,
    "Heaviside": lambda x, *h: np.heaviside(x, 0.5), "DiracDelta": lambda x, *k: np.zeros_like(np.asarray(x, float)),
    "Max": lambda *a: functools.reduce(np.maximum, a), "Min": lambda *a: functools.reduce(np.minimum, a),
    "And": lambda *a: functools.reduce(np.logical_and, a), "Or": lambda *a: functools.reduce(np.logical_or, a),
    "Not": np.logical_not, "KroneckerDelta": lambda a, b: np.equal(a, b).astype(float),
}


def along(expr: sp.Basic, values: dict[str, np.ndarray], seeds: dict[str, np.ndarray], memo: dict,
          tangents: dict) -> np.ndarray | None:
    """The derivative of ``expr`` along ``seeds`` (entry name -> how far it moves) by forward mode:
    the rules ``sympy.diff`` applies, carried out on NumPy arrays over the DAG (each distinct
    subexpression once; ``memo`` holds the values, as for ``numeric``).  None where it is zero."""
    if expr in tangents:
        return tangents[expr]
    if expr.is_Symbol:
        tangent = seeds.get(expr.name)
    elif not expr.args or isinstance(expr, sp.core.relational.Relational):
        tangent = None  # a number, or a condition (which nothing differentiates)
    elif isinstance(expr, sp.Piecewise):
        parts = [along(e, values, seeds, memo, tangents) for e, _ in expr.args]
        conditions = [np.asarray(numeric(c, values, memo), dtype=bool) for _, c in expr.args]
        tangent = None if all(p is None for p in parts) else \
            np.select(conditions, [0.0 if p is None else p for p in parts], np.nan)
    else:
        parts = [along(a, values, seeds, memo, tangents) for a in expr.args]
        tangent = None if all(p is None for p in parts) else \
            _chain(expr, [numeric(a, values, memo) for a in expr.args], parts)
    tangents[expr] = tangent
    return tangent


def _chain(expr: sp.Basic, args: list, parts: list):
    """The derivative of ``expr`` from its arguments' values and derivatives (None: zero)."""
    name = type(expr).__name__
    if name == "Add":
        return functools.reduce(np.add, [p for p in parts if p is not None])
    if name == "Mul":
        return functools.reduce(np.add, [functools.reduce(np.multiply, args[:i] + args[i + 1:], p)
                                         for i, p in enumerate(parts) if p is not None])
    if name == "Pow":
        (base, exponent), (d_base, d_exponent) = args, parts
        if d_exponent is None:
            return exponent * np.power(base, exponent - 1) * d_base
        return np.power(base, exponent) * (d_exponent * np.log(base) + (0.0 if d_base is None else
                                                                          exponent * d_base / base))
    if name in ("Max", "Min"):  # as sympy.diff: each argument's part where it is the extremum
        pick = np.maximum if name == "Max" else np.minimum
        sign = 1 if name == "Max" else -1
        return functools.reduce(np.add, [
            np.heaviside(sign * (args[i] - functools.reduce(pick, args[:i] + args[i + 1:])), 0.5) * p
            for i, p in enumerate(parts) if p is not None])
    if name in _STEPS:
        return None  # a step's derivative (DiracDelta) is zero wherever the oracle evaluates one
    if name not in _DERIVATIVES or len(args) != 1:
        raise ValueError(f"the oracle cannot differentiate {name}")
    return _DERIVATIVES[name](args[0]) * parts[0]


_STEPS = ("sign", "Heaviside", "DiracDelta", "KroneckerDelta")
_DERIVATIVES: dict[str, Callable[[Any], Any]] = {
    "exp": np.exp, "log": lambda v: 1 / v, "sin": np.cos, "cos": lambda v: -np.sin(v),
    "tan": lambda v: 1 + np.tan(v) ** 2, "sinh": np.cosh, "cosh": np.sinh, "tanh": lambda v: 1 - np.tanh(v) ** 2,
    "erf": lambda v: 2 / np.sqrt(np.pi) * np.exp(-np.square(v)), "Abs": np.sign,
}


@dataclass
class Expanded:
    """One model at one assignment of its axis sizes: output entries and Jacobian entries.

    The entries of the inputs are arrays over the batch (or numbers), named like their symbols.
    """

    model: OperatorModel
    sizes: dict
    out_shape: tuple[int, ...]
    in_shapes: dict[str, tuple[int, ...]]
    outputs: list[sp.Expr]
    jacobians: dict[str, list[sp.Expr]]
    hessians: dict[tuple[str, str], list[sp.Expr]] = field(default_factory=dict)
    """Second derivatives by two inputs, worked out when first asked for (``hessian``)."""

    def arguments_for(self, arrays: dict[str, np.ndarray], params: dict[sp.Symbol, float]) -> dict:
        """The value of every symbol, by name: each array's core entries (its trailing axes; leading
        axes are the batch; class labels too, which a Kronecker delta compares), the parameters."""
        values: dict[str, Any] = {}
        for name, core in self.in_shapes.items():
            array = np.asarray(arrays[name])
            for at in itertools.product(*(range(n) for n in core)):
                where: tuple = (Ellipsis, *at)
                values[entry(name, at).name] = array[where]
        values.update({s.name: v for s, v in params.items()})
        return values

    def forward(self, arrays: dict, params: dict, batch: tuple[int, ...]) -> np.ndarray:
        """The output, of shape ``batch + out_shape``."""
        values, memo = self.arguments_for(arrays, params), dict[sp.Basic, Any]()
        with np.errstate(all="ignore"):  # an overflow is a non-finite value, which the proof leaves out
            flat = _stack([numeric(y, values, memo) for y in self.outputs], batch)
        return flat.reshape(batch + self.out_shape)

    def jacobian(self, name: str, arrays: dict, params: dict, batch: tuple[int, ...]) -> np.ndarray:
        """d out / d input, of shape ``batch + (output entries, input entries)``."""
        values, memo = self.arguments_for(arrays, params), dict[sp.Basic, Any]()
        with np.errstate(all="ignore"):
            flat = _stack([numeric(d, values, memo) for d in self.jacobians[name]], batch)
        return flat.reshape(batch + (int(np.prod(self.out_shape)), int(np.prod(self.in_shapes[name]))))

    def hessian(self, name: str, by: str, arrays: dict, params: dict, batch: tuple[int, ...]) -> np.ndarray:
        """d2 out / d name d by (``sympy.diff`` of each Jacobian entry by each entry of ``by``), of
        shape ``batch + (output entries, entries of name, entries of by)``."""
        if (name, by) not in self.hessians:
            entries = [sp.Symbol(entry(by, at).name, real=True)
                       for at in itertools.product(*(range(n) for n in self.in_shapes[by]))]
            self.hessians[(name, by)] = [sp.diff(d, s) for d in self.jacobians[name] for s in entries]
        values, memo = self.arguments_for(arrays, params), dict[sp.Basic, Any]()
        with np.errstate(all="ignore"):
            flat = _stack([numeric(d, values, memo) for d in self.hessians[(name, by)]], batch)
        sizes = (int(np.prod(self.in_shapes[name])), int(np.prod(self.in_shapes[by])))
        return flat.reshape(batch + (int(np.prod(self.out_shape)), *sizes))

    def hessian_forward(self, name: str, by: str, arrays: dict, params: dict, batch: tuple[int, ...]) -> np.ndarray:
        """``hessian`` by forward mode: the Jacobian's DAG differentiated along each entry of ``by`` in
        turn (``along``, that entry's seed 1), no Hessian expression built; the proof's (the twin's
        blocks), ``hessian`` the tests' reference."""
        values, memo = self.arguments_for(arrays, params), dict[sp.Basic, Any]()
        names = [entry(by, at).name for at in itertools.product(*(range(n) for n in self.in_shapes[by]))]
        with np.errstate(all="ignore"):
            columns = []
            for seed in names:
                tangents: dict = {}
                moved = [along(d, values, {seed: np.ones(batch)}, memo, tangents) for d in self.jacobians[name]]
                columns.append(_stack([0.0 if m is None else m for m in moved], batch))
        flat = np.stack(columns, axis=-1) if columns else np.zeros(batch + (len(self.jacobians[name]), 0))
        sizes = (int(np.prod(self.in_shapes[name])), len(names))
        return flat.reshape(batch + (int(np.prod(self.out_shape)), *sizes))

    def hessian_vector(self, name: str, by: str, arrays: dict, params: dict, cotangent: np.ndarray,
                       tangent: np.ndarray, batch: tuple[int, ...]) -> np.ndarray:
        """sum_o sum_m cotangent[o] d2 out[o] / d name[i] d by[m] tangent[m], of shape ``batch +
        (entries of name,)``: each Jacobian entry differentiated along ``tangent`` (``by``'s entries
        moved by it) in forward mode (``along``), contracted with the cotangent.  One pass over the
        Jacobian's DAG instead of out x name x by Hessian entries built by ``sympy.diff``;
        ``cotangent`` and ``tangent`` are flat (batch + (-1,))."""
        outputs, entries = int(np.prod(self.out_shape)), int(np.prod(self.in_shapes[name]))
        values, memo, tangents = self.arguments_for(arrays, params), dict[sp.Basic, Any](), dict[sp.Basic, Any]()
        seeds = {entry(by, at).name: tangent[..., m]
                 for m, at in enumerate(itertools.product(*(range(n) for n in self.in_shapes[by])))}
        jacobian = self.jacobians[name]
        with np.errstate(all="ignore"):
            moved = [along(d, values, seeds, memo, tangents) for d in jacobian]
            return _stack([sum((cotangent[..., o] * moved[o * entries + i] for o in range(outputs)
                                if moved[o * entries + i] is not None), np.zeros(batch))
                           for i in range(entries)], batch)


def undefined_part(expr: sp.Expr, values: dict) -> tuple[sp.Expr, float] | None:
    """The innermost part of ``expr`` that is not finite at ``values`` (its arguments all are), with
    its first such value; None when ``expr`` is finite everywhere."""
    memo: dict = {}

    def bad(node: sp.Basic) -> np.ndarray | None:
        with np.errstate(all="ignore"):
            value = np.asarray(numeric(node, values, memo), dtype=float)
        return None if np.all(np.isfinite(value)) else value

    value = bad(expr)
    if value is None:
        return None
    node = expr
    while True:
        inner = next(((a, v) for a in node.args if isinstance(a, sp.Expr) and (v := bad(a)) is not None), None)
        if inner is None:
            return node, float(value[~np.isfinite(value)].flat[0])
        node, value = inner


def _stack(values: list, batch: tuple[int, ...]) -> np.ndarray:
    return np.stack([np.broadcast_to(np.asarray(v, dtype=float), batch) for v in values], axis=-1) \
        if values else np.zeros(batch + (0,))


@functools.lru_cache(maxsize=64)
def expanded(model: OperatorModel, sizes: tuple[tuple[sp.Symbol, int], ...]) -> Expanded:
    """``model`` at ``sizes`` (each axis symbol with its length), expanded and differentiated.

    Entries are real symbols, so ``sympy.diff`` of ``Abs`` is ``sign``, not a complex form."""
    fixed = dict(sizes)
    out_shape = shape(model.output_dims, fixed)
    at_sizes = expander(fixed, real=True)  # each row's sums written out once for all its entries
    outputs = [elementary(at_sizes(model.output, dict(zip(model.output_indices, at))))
               for at in itertools.product(*(range(n) for n in out_shape))]
    in_shapes = {inp.name: shape(inp.dims, fixed) for inp in model.inputs}
    outputs = [y.xreplace({s: sp.Symbol(s.name, real=True) for s in y.free_symbols}) for y in outputs]
    entries = {inp.name: [sp.Symbol(entry(inp.name, at).name, real=True)
                          for at in itertools.product(*(range(n) for n in in_shapes[inp.name]))]
               for inp in model.inputs}
    jacobians = {inp.name: [sp.diff(y, s) for y in outputs for s in entries[inp.name]]
                 for inp in model.differentiable_inputs}
    return Expanded(model, fixed, out_shape, in_shapes, outputs, jacobians)
