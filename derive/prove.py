"""Proof before writing: every rendered kernel is executed and compared with the oracle.

``prove(model, files)`` runs the freshly rendered NumPy module on random float64 inputs, with the
core axes at sizes 1, 2, 3 (4 for a fourth axis), a different size for each axis, every layout
variant (each ``axis`` and ``keepdims``, each value of a formula-selecting parameter), batch shapes
(), (2,) and broadcast ones (size-1 axes in either input, 0-d inputs), and optional inputs given
and omitted.  It compares ``forward``, every input's ``vjp``, ``jvp`` and ``vjp_jvp`` (all tangents
together and each alone) with ``derive.oracle``: the model expanded into scalars, differentiated
by plain ``sympy.diff``, evaluated numerically (``vjp_jvp`` against the gradient differentiated
along each input's tangent, ``Expanded.hessian_vector``, worked out on first use).  The LaTeX target's
final VJP and JVP equations (its JSON twin) are evaluated against the same oracle, and its
second-order ones (each ``vjp_jvp`` and printed Hessian block) against the oracle's Hessian.  A
mismatch raises ``ProofError`` naming the operator, the call, the sizes and the first entries that
differ; nothing is written.
"""

from __future__ import annotations

import itertools
import json
import types
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from .calculus.concrete import expand
from .calculus.differentiate import DerivationError
from .functions import elementary, model_functions
from .model import OperatorModel
from .oracle import Expanded, expanded, numeric, shape
from .prove_layouts import Case, cases, fit
from .errors import ProofError  # noqa: F401  (raised here, defined with the others)

RTOL, ATOL = 1e-7, 1e-9
"""Agreement required between a kernel and the oracle (relative, and absolute per unit of scale)."""


@dataclass
class Call:
    """One case at one assignment of sizes: the arrays as the user passes them, and the oracle."""

    model: OperatorModel
    oracle: Expanded
    case: Case
    arrays: list[np.ndarray | None]
    params: dict = field(default_factory=dict)

    def describe(self) -> str:
        sizes = ", ".join(f"{d}={v}" for d, v in self.oracle.sizes.items())
        shapes = ", ".join(f"{inp.name}{'=None' if a is None else np.shape(a)}"
                           for inp, a in zip(self.model.inputs, self.arrays))
        params = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"sizes {sizes}; {shapes}{params}"


def prove(model: OperatorModel, files: dict[str, str], seed: int = 0) -> None:
    """Raise ``ProofError`` unless every proved file of ``model`` agrees with the oracle: each
    target registers the checks its files pass (``Target.proofs``: the NumPy kernel, the twin)."""
    from .targets import TARGETS

    for target in TARGETS:
        for suffix, check in target.proofs.items():
            text = files.get(f"{target.folder}/{model.name}{suffix}")
            if text is not None:
                check(model, text, seed)


def load_text(model: OperatorModel, text: str) -> types.ModuleType:
    module = types.ModuleType(f"derive_proof_{model.name}")
    exec(compile(text, f"<kernel {model.name}>", "exec"), module.__dict__)  # the kernel just rendered
    return module


def variants(model: OperatorModel) -> list[tuple[OperatorModel, dict]]:
    """The model once per value of its formula-selecting parameter, with the keyword selecting it."""
    from . import registry

    choice = next((p for p in model.params if p.choices), None)
    if choice is None:
        return [(model, {})]
    return [(model if value == choice.default else registry.rebuild(model, **{choice.name: value}),
             {choice.name: value}) for value in choice.choices]


def size_cases(model: OperatorModel) -> list[dict]:
    """Assignments of distinct sizes, each axis taking a different size in each: 1, 2, 3 in turn
    for up to three axes; with four, two turns of 1 to 4 (the expansion grows as the product)."""
    dims = model.dims()
    count = max(3, len(dims))
    shifts = range(1, 3) if len(dims) > 3 else range(count)
    return [{d: (p + c) % count + 1 for p, d in enumerate(dims)} for c in shifts]


def prove_kernel(model: OperatorModel, text: str, seed: int = 0) -> None:
    prove_module(model, load_text(model, text), seed)


def prove_module(model: OperatorModel, module, seed: int = 0) -> None:
    """The proof of a loaded kernel (anything with its ``forward``, ``vjp``, ``jvp`` and ``vjp_jvp``: a target
    may pass one that calls the kernel with arrays of another library and returns NumPy arrays)."""
    rng = np.random.default_rng(seed)
    for variant, selected in variants(model):
        params = _param_values(variant, rng)
        for sizes, case in cases(variant, size_cases(variant)):
            oracle = expanded(variant, tuple(sizes.items()))
            arrays = [None if shape is None else _values(inp, shape, sizes, rng)
                      for inp, shape in zip(variant.inputs, case.shapes)]
            keywords = {**selected, **case.keywords, **{p.name: v for p, v in params.items()}}
            call = Call(variant, oracle, case, arrays, keywords)
            _check_call(call, module, {p.symbol: v for p, v in params.items()}, rng)


def _param_values(model: OperatorModel, rng: np.random.Generator) -> dict:
    """A value in (0.2, 1) for every numeric parameter (eps too: a misplaced eps shows)."""
    return {p: float(rng.uniform(0.2, 1.0)) for p in model.params if p.symbol is not None}


def _values(inp, shape: tuple, sizes: dict, rng: np.random.Generator) -> np.ndarray:
    if inp.domain == "index":
        return rng.integers(0, int(sp.sympify(inp.index_of).subs(sizes)), size=shape)
    values = rng.standard_normal(shape)
    if inp.domain == "positive":
        return np.abs(values) + 0.5
    if inp.domain == "nonzero":
        return np.sign(values) * (np.abs(values) + 0.5)
    return values


def _check_call(call: Call, module, symbols: dict, rng: np.random.Generator) -> None:
    model, case, oracle = call.model, call.case, call.oracle
    core = {inp.name: case.to_core(inp, a) for inp, a in zip(model.inputs, call.arrays)}
    core = {name: (_default(model, name, oracle) if a is None else a) for name, a in core.items()}
    batch = np.broadcast_shapes(*(np.shape(a)[:np.ndim(a) - len(oracle.in_shapes[n])] for n, a in core.items()))
    full = {n: np.broadcast_to(a, batch + oracle.in_shapes[n]) for n, a in core.items()}
    forward = case.from_core_output(oracle.forward(full, symbols, batch))
    got = _run(call, "forward", lambda: module.forward(*call.arrays, **call.params))
    _compare(call, "forward", got, forward)
    cotangent = rng.standard_normal(np.shape(forward))
    jac = {inp.name: oracle.jacobian(inp.name, full, symbols, batch)
           for inp, a in zip(model.inputs, call.arrays) if inp.differentiable and a is not None}
    grads = _run(call, "vjp", lambda: module.vjp(cotangent, *call.arrays, **call.params))
    dy = case.to_core_output(cotangent).reshape(batch + (-1,))
    for inp, array, grad in zip(model.inputs, call.arrays, grads):
        if inp.name not in jac:
            if grad is not None:
                raise ProofError(f"{_where(call)}: vjp returns a gradient for {inp.name!r}, which has none")
            continue
        expected = np.einsum("...o,...oi->...i", dy, jac[inp.name]).reshape(batch + oracle.in_shapes[inp.name])
        _compare(call, f"vjp, gradient of {inp.name!r}", grad, fit(case.from_core(inp, expected, array), np.shape(array)))
    tangents = {name: rng.standard_normal(np.shape(a)) for name, a in
                ((inp.name, a) for inp, a in zip(model.inputs, call.arrays)) if name in jac}
    choices = [tuple(tangents)] + [(name,) for name in tangents] if len(tangents) > 1 else [tuple(tangents)]
    for chosen in choices:
        _check_jvp(call, module, chosen, tangents, jac, batch)
    hessians: dict = {}  # each (input, by) term evaluated once for all the choices of tangents
    for chosen in choices:
        _check_vjp_jvp(call, module, chosen, tangents, cotangent, (full, symbols, dy, batch), hessians)


def _check_jvp(call: Call, module, chosen: tuple, tangents: dict, jac: dict, batch: tuple) -> None:
    model, case, oracle = call.model, call.case, call.oracle
    total = np.zeros(batch + (int(np.prod(oracle.out_shape)),))
    for inp in model.inputs:
        if inp.name in chosen:
            t = np.broadcast_to(case.to_core(inp, tangents[inp.name]), batch + oracle.in_shapes[inp.name])
            total = total + np.einsum("...oi,...i->...o", jac[inp.name], t.reshape(batch + (-1,)))
    expected = case.from_core_output(total.reshape(batch + oracle.out_shape))
    given = tuple(tangents[inp.name] if inp.name in chosen else None for inp in model.inputs)
    got = _run(call, "jvp", lambda: module.jvp(given, *call.arrays, **call.params))
    _compare(call, f"jvp along {', '.join(chosen)}", got, expected)


def _check_vjp_jvp(call: Call, module, chosen: tuple, tangents: dict, cotangent: np.ndarray,
                   at: tuple, hessians: dict) -> None:
    """``vjp_jvp`` along the ``chosen`` tangents: for each input a, the sum over b of
    dy . d2 out / da db . dot_b (``Expanded.hessian_vector``: the oracle's gradient differentiated
    along dot_b, worked out on first use), each (a, b) term evaluated once per call."""
    model, case, oracle = call.model, call.case, call.oracle
    full, symbols, dy, batch = at
    given = tuple(tangents[inp.name] if inp.name in chosen else None for inp in model.inputs)
    got = _run(call, "vjp_jvp", lambda: module.vjp_jvp(cotangent, given, *call.arrays, **call.params))
    what = f"vjp_jvp along {', '.join(chosen)}"
    if got is None or len(got) != len(model.inputs):
        raise ProofError(f"{_where(call)}: {what} returns {got!r}, not one entry per input")
    for inp, array, value in zip(model.inputs, call.arrays, got):
        if inp.name not in tangents:
            if value is not None:
                raise ProofError(f"{_where(call)}: {what} returns an entry for {inp.name!r}, which has no gradient")
            continue
        total = np.zeros(batch + (int(np.prod(oracle.in_shapes[inp.name])),))
        for by in chosen:
            if (inp.name, by) not in hessians:
                t = np.broadcast_to(case.to_core(model.input(by), tangents[by]), batch + oracle.in_shapes[by])
                hessians[(inp.name, by)] = oracle.hessian_vector(inp.name, by, full, symbols, dy,
                                                                 t.reshape(batch + (-1,)), batch)
            total = total + hessians[(inp.name, by)]
        expected = total.reshape(batch + oracle.in_shapes[inp.name])
        _compare(call, f"{what}, entry of {inp.name!r}", value, fit(case.from_core(inp, expected, array), np.shape(array)))


def _default(model: OperatorModel, name: str, oracle: Expanded) -> np.ndarray:
    """An omitted optional input as the value it stands for (1 for a scale, 0 for a shift)."""
    return np.full(oracle.in_shapes[name], float(model.input(name).default or 0.0))


def _run(call: Call, what: str, function):
    try:
        return function()
    except Exception as error:  # the kernel failed on valid input: that is what the proof reports
        raise ProofError(f"{_where(call)}: {what} raised {type(error).__name__}: {error}") from None


def _where(call: Call) -> str:
    return f"proof failed for operator {call.model.name!r} ({call.model.source}) at {call.describe()}"


def _compare(call: Call, what: str, got, expected: np.ndarray) -> None:
    got = None if got is None else np.asarray(got)
    if got is None or got.shape != expected.shape:
        raise ProofError(f"{_where(call)}: {what} has shape {None if got is None else got.shape}, "
                         f"expected {expected.shape}")
    finite = np.isfinite(expected)  # where the plain formula overflows, the oracle cannot judge
    scale = max(1.0, float(np.max(np.abs(expected), where=finite, initial=0.0)))
    bad = finite & ~np.isclose(got, expected, rtol=RTOL, atol=ATOL * scale)
    if bad.any():
        at = tuple(int(v) for v in np.argwhere(bad)[0])
        raise ProofError(f"{_where(call)}: {what} differs from the oracle at entry {at} "
                         f"({int(bad.sum())} of {bad.size}): kernel {got[at]!r}, oracle {expected[at]!r}")


def prove_twin(model: OperatorModel, text: str, seed: int = 0) -> None:
    """The twin's final VJP and JVP equations, evaluated entry by entry, against the oracle."""
    from .targets.latex.target import load_srepr

    rng = np.random.default_rng(seed)
    variant_sizes = size_cases(model)[0]
    oracle = expanded(model, tuple(variant_sizes.items()))
    arrays = {inp.name: _values(inp, oracle.in_shapes[inp.name], variant_sizes, rng) for inp in model.inputs}
    params = {p.symbol: float(rng.uniform(0.2, 1.0)) for p in model.params if p.symbol is not None}
    values = oracle.arguments_for(arrays, params)
    dy = rng.standard_normal(oracle.out_shape)
    values.update(_entries("dy", dy))
    functions = model_functions((model.output, *(definition for _, definition in model.where)))
    equations = json.loads(text).get("equations", [])
    for equation in equations:
        if equation.get("kind") not in ("vjp", "jvp"):
            continue
        name = equation["input"]
        jac = oracle.jacobian(name, arrays, params, ())
        if equation["kind"] == "vjp":
            expected, axes = (dy.reshape(-1) @ jac).reshape(oracle.in_shapes[name]), _vjp_axes(model, name)
        else:
            tangent = rng.standard_normal(oracle.in_shapes[name])
            values.update(_entries(f"dot_{name}", tangent))
            expected, axes = (jac @ tangent.reshape(-1)).reshape(oracle.out_shape), model.output_indices
        formula = load_srepr(equation["rhs"], functions)
        for at in itertools.product(*(range(n) for n in expected.shape)):
            got = _twin_value(model, equation, elementary(expand(formula, oracle.sizes, dict(zip(axes, at)))), values)
            if not np.isclose(got, expected[at], rtol=RTOL, atol=ATOL * max(1.0, float(np.max(np.abs(expected))))):
                sizes = ", ".join(f"{d}={v}" for d, v in oracle.sizes.items())
                raise ProofError(f"proof failed for operator {model.name!r} ({model.source}): LaTeX equation "
                                 f"{equation['label']} at sizes {sizes}, entry {at}: document {got!r}, "
                                 f"oracle {expected[at]!r}")
    _prove_twin_second(model, equations, params, functions, rng)


SECOND_ENTRIES = 8
"""The most entries an input gets in the second-order proof (the oracle's Hessian grows as their cube)."""


def second_sizes(model: OperatorModel) -> dict:
    """Sizes for the second-order proof: 3 along a single axis, else 2 along each, leading axes then
    set to 1 until no input has more than ``SECOND_ENTRIES`` entries (a normalised group keeps two or more)."""
    dims = model.dims()
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
    from .targets.latex.target import load_srepr

    wanted = [e for e in equations if e.get("kind") in ("vjp_jvp", "hessian")]
    if not wanted:
        return
    sizes = second_sizes(model)
    oracle = expanded(model, tuple(sizes.items()))
    arrays = {inp.name: _values(inp, oracle.in_shapes[inp.name], sizes, rng) for inp in model.inputs}
    dy = rng.standard_normal(oracle.out_shape)
    tangents = {inp.name: rng.standard_normal(oracle.in_shapes[inp.name]) for inp in model.differentiable_inputs}
    values = {**oracle.arguments_for(arrays, params), **_entries("dy", dy),
              **{k: v for name, t in tangents.items() for k, v in _entries(f"dot_{name}", t).items()}}
    for equation in wanted:
        name = equation["input"]
        if equation["kind"] == "vjp_jvp":
            expected = sum(np.einsum("o,oim,m->i", dy.reshape(-1), oracle.hessian(name, b, arrays, params, ()),
                                     t.reshape(-1)) for b, t in tangents.items())
            expected, axes = np.reshape(expected, oracle.in_shapes[name]), _vjp_axes(model, name)
        else:
            by = load_srepr(equation["lhs"], functions).args[1]  # Partial(vjp, b[m...]), or of a scalar b
            by_name, by_axes = (str(by.base), tuple(by.indices)) if isinstance(by, sp.Indexed) else (str(by), ())
            block = np.einsum("o,oim->im", dy.reshape(-1), oracle.hessian(name, by_name, arrays, params, ()))
            axes = (*_vjp_axes(model, name), *by_axes)
            expected = block.reshape(oracle.in_shapes[name] + oracle.in_shapes[by_name])
        _twin_entries(model, equation, load_srepr(equation["rhs"], functions), expected, axes, oracle, values)


def _twin_entries(model: OperatorModel, equation: dict, formula: sp.Expr, expected: np.ndarray, axes: tuple,
                  oracle: Expanded, values: dict) -> None:
    """Every entry of ``formula`` (free in ``axes``) against ``expected``; a ProofError at the first that differs."""
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    for at in itertools.product(*(range(n) for n in expected.shape)):
        got = _twin_value(model, equation, elementary(expand(formula, oracle.sizes, dict(zip(axes, at)))), values)
        if not np.isclose(got, expected[at], rtol=RTOL, atol=ATOL * scale):
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
    from .calculus.pipeline import wrt_entry

    return tuple(wrt_entry(model, model.input(name)).indices)


def _entries(base: str, array: np.ndarray) -> dict[str, float]:
    if array.ndim == 0:
        return {base: float(array)}
    return {"_".join([base, *map(str, at)]): float(array[at]) for at in np.ndindex(array.shape)}
