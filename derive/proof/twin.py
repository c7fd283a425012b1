"""The proof of the LaTeX target's JSON twin: its VJP, JVP and matrix-form equations evaluated entry
by entry against the oracle (``derive.proof.oracle``), and its second-order ones (each ``vjp_jvp`` and
printed Hessian block) against the oracle's Hessian, with the kernels' tolerance (``derive.proof.kernel.agrees``).
A mismatch raises ``ProofError`` naming the operator, the equation's label, the sizes and the entry.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import sympy as sp

from ..calculus.concrete import expand
from ..errors import ProofError
from ..model import OperatorModel, free_sizes
from ..model.functions import elementary, model_functions
from .kernel import agrees, check_defined, input_values, param_value, size_cases
from .oracle import Expanded, expanded, numeric, shape
from .srepr import load_srepr


def entries(base: str, array: np.ndarray) -> dict[str, float]:
    """The oracle's value of every entry of ``array``, by symbol name (``dy_0_1``)."""
    if array.ndim == 0:
        return {base: float(array)}
    return {"_".join([base, *map(str, at)]): float(array[at]) for at in np.ndindex(array.shape)}


def prove_twin(model: OperatorModel, text: str, seed: int = 0) -> None:
    """The twin's VJP, JVP and matrix-form (Jacobian) equations, evaluated entry by entry, against the oracle."""
    rng = np.random.default_rng(seed)
    variant_sizes = size_cases(model)[0]
    oracle = expanded(model, tuple(variant_sizes.items()))
    arrays = {inp.name: input_values(inp, oracle.in_shapes[inp.name], variant_sizes, rng) for inp in model.inputs}
    params = {p.symbol: param_value(p, rng) for p in model.params if p.symbol is not None}
    check_defined(model, oracle, arrays, params, ())
    values = oracle.arguments_for(arrays, params)
    dy = rng.standard_normal(oracle.out_shape)
    values.update(entries("dy", dy))
    functions = model_functions((model.output, *(definition for _, definition in model.where)))
    equations = json.loads(text).get("equations", [])
    for equation in equations:
        if equation.get("kind") not in ("vjp", "jvp", "matrix"):
            continue
        name = equation["input"]
        jac = oracle.jacobian(name, arrays, params, ())
        if equation["kind"] == "matrix":  # the Jacobian's entries, row (output) by column (input)
            expected = jac.reshape(oracle.out_shape + oracle.in_shapes[name])
            axes = (*model.output_indices, *_vjp_axes(model, name))
        elif equation["kind"] == "vjp":
            expected, axes = (dy.reshape(-1) @ jac).reshape(oracle.in_shapes[name]), _vjp_axes(model, name)
        else:
            tangent = rng.standard_normal(oracle.in_shapes[name])
            values.update(entries(f"dot_{name}", tangent))
            expected, axes = (jac @ tangent.reshape(-1)).reshape(oracle.out_shape), model.output_indices
        _twin_entries(model, equation, load_srepr(equation["rhs"], functions), expected, axes, oracle, values)
    _prove_twin_second(model, equations, params, functions, rng)


SECOND_ENTRIES = 8
"""The most entries an input gets in the second-order proof (the oracle's Hessian grows as their cube)."""


def second_sizes(model: OperatorModel) -> dict:
    """Sizes for the second-order proof: 3 along a single axis, else 2 along each, leading axes then
    set to 1 until no input has more than ``SECOND_ENTRIES`` entries (a normalised group keeps two or more)."""
    dims = free_sizes(model.dims())
    sizes = {d: 3 if len(dims) == 1 else 2 for d in dims}
    for dim in dims:
        if max(int(np.prod(shape(inp.dims, sizes))) for inp in model.inputs) <= SECOND_ENTRIES:
            break
        sizes[dim] = 1
    return sizes


def _prove_twin_second(model: OperatorModel, equations: list[dict], params: dict, functions: dict,
                       rng: np.random.Generator) -> None:
    """The twin's second-order equations against the oracle's Hessian: each final ``vjp_jvp``
    (sum over b of einsum(dy, hessian(a, b), tangent_b)) and each printed Hessian block (einsum(dy, hessian(a, b)))."""
    wanted = [e for e in equations if e.get("kind") in ("vjp_jvp", "hessian")]
    if not wanted:
        return
    sizes = second_sizes(model)
    oracle = expanded(model, tuple(sizes.items()))
    arrays = {inp.name: input_values(inp, oracle.in_shapes[inp.name], sizes, rng) for inp in model.inputs}
    check_defined(model, oracle, arrays, params, ())
    dy = rng.standard_normal(oracle.out_shape)
    tangents = {inp.name: rng.standard_normal(oracle.in_shapes[inp.name]) for inp in model.differentiable_inputs}
    values = {**oracle.arguments_for(arrays, params), **entries("dy", dy),
              **{k: v for name, t in tangents.items() for k, v in entries(f"dot_{name}", t).items()}}
    for equation in wanted:
        name = equation["input"]
        if equation["kind"] == "vjp_jvp":
            expected = sum(np.einsum("o,oim,m->i", dy.reshape(-1),
                                     oracle.hessian_forward(name, b, arrays, params, ()),
                                     t.reshape(-1)) for b, t in tangents.items())
            expected, axes = np.reshape(expected, oracle.in_shapes[name]), _vjp_axes(model, name)
        else:
            by = load_srepr(equation["lhs"], functions).args[1]  # Partial(vjp, b[m...]), or of a scalar b
            by_name, by_axes = (str(by.base), tuple(by.indices)) if isinstance(by, sp.Indexed) else (str(by), ())
            block = np.einsum("o,oim->im", dy.reshape(-1), oracle.hessian_forward(name, by_name, arrays, params, ()))
            axes = (*_vjp_axes(model, name), *by_axes)
            expected = block.reshape(oracle.in_shapes[name] + oracle.in_shapes[by_name])
        _twin_entries(model, equation, load_srepr(equation["rhs"], functions), expected, axes, oracle, values)


def _twin_entries(model: OperatorModel, equation: dict, formula: sp.Expr, expected: np.ndarray, axes: tuple,
                  oracle: Expanded, values: dict) -> None:
    """Every entry of ``formula`` (free in ``axes``) against ``expected``; a ProofError at the first that differs."""
    scale = float(np.max(np.abs(expected), initial=0.0))
    for at in itertools.product(*(range(n) for n in expected.shape)):  # each entry written out, then evaluated
        got = _twin_value(model, equation, elementary(expand(formula, oracle.sizes, dict(zip(axes, at)))), values)
        if not agrees(got, expected[at], scale):
            sizes = ", ".join(f"{d}={v}" for d, v in oracle.sizes.items())
            raise ProofError(f"proof failed for operator {model.name!r} ({model.source}): LaTeX equation "
                             f"{equation['label']} at sizes {sizes}, entry {at}: document {got!r}, "
                             f"oracle {expected[at]!r}")


def _twin_value(model: OperatorModel, equation: dict, expr: sp.Expr, values: dict) -> float:
    try:
        return float(numeric(expr, values))
    except (ValueError, TypeError) as error:
        raise ProofError(f"proof failed for operator {model.name!r} ({model.source}): LaTeX equation "
                         f"{equation['label']}: {error}") from None


def _vjp_axes(model: OperatorModel, name: str) -> tuple:
    from ..calculus.pipeline import wrt_entry

    return tuple(wrt_entry(model, model.input(name)).indices)
