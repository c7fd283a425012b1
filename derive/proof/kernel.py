"""Proof before writing: a rendered kernel is executed and compared with the oracle.

Each target registers the checks its files pass (``Target.proofs``, run by ``derive.pipeline.render``
before anything is cached or written); the Python kernels' is ``prove_kernel``.  A kernel is run on
random float64 inputs at the cases of ``derive.proof.layouts`` (core axes of sizes 1, 2, 3, every
layout variant, batches that broadcast, have size-1 axes and more rows than a parallel kernel splits
a call into, optional inputs given and omitted), with each value of a formula-selecting parameter.
``forward``, every input's ``vjp``, ``jvp`` and ``vjp_jvp`` (all tangents together and each alone)
are compared with ``derive.proof.oracle``: the model expanded into scalars, differentiated by plain
``sympy.diff``, evaluated numerically (``vjp_jvp`` against the Jacobian differentiated along each
input's tangent by forward mode, ``Expanded.hessian_vector``); ``vjp`` and ``vjp_jvp`` again with
every subset of the inputs as ``wrt``; a kernel that saves residuals (``RESIDUALS``) again with those
``forward(..., residuals=True)`` returned; a kernel that takes ``out=`` again into NaN-filled buffers,
which must be returned and hold every entry.  The oracle is evaluated once per call for every run a
target asks for (``prove_runs``: the numba loops at several chunkings, the Array API kernel on two
array libraries).  Agreement is to ``ROUNDING`` float64 epsilons (``agrees``).  A mismatch raises
``ProofError`` naming the operator, the run, the call, the sizes and the first entries that differ;
nothing is written.  The LaTeX twin's proof is ``derive.proof.twin``.
"""

from __future__ import annotations

import inspect
import itertools
import types
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import sympy as sp

from ..errors import ProofError
from ..model import OperatorModel, domains, free_sizes
from .layouts import Case, cases, fit
from .oracle import Expanded, expanded, undefined_part

EPS = float(np.finfo(np.float64).eps)
"""The proof computes in float64: the kernels and the oracle round to this (2.2e-16) per operation."""
ROUNDING = 2.0 ** 14
"""Epsilons a kernel's entry may differ from the oracle's, per unit of ``|entry| + max(1, |largest
entry|)``: 3.6e-12 (the proof's inputs are of order 1, so the computation's intermediate values are
of order max(1, the result)).  Calibrated on every call of the proof: the built-in kernels differ
by at most 38 such units, the fuzzer's first 600 models (seed 2026) by at most 904 (the second
derivative of a sigmoid of a large sum: 1 - sigmoid loses its digits).  So a relative error of 1e-5
is refused in any entry larger than 3.6e-7 of that scale (tests/test_prove_tolerance.py)."""


@dataclass
class Call:
    """One case at one assignment of sizes: the arrays as the user passes them, and the oracle."""

    model: OperatorModel
    oracle: Expanded
    case: Case
    arrays: list[np.ndarray | None]
    params: dict = field(default_factory=dict)
    run: str = ""
    """Which run of the kernel (``prove_runs``), when a target asks for several."""

    def describe(self) -> str:
        sizes = ", ".join(f"{d}={v}" for d, v in self.oracle.sizes.items())
        shapes = ", ".join(f"{inp.name}{'=None' if a is None else np.shape(a)}"
                           for inp, a in zip(self.model.inputs, self.arrays))
        params = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"sizes {sizes}; {shapes}{params}" + (f" ({self.run})" if self.run else "")


@dataclass
class Expected:
    """The oracle's values for one call: the output, each gradient, each jvp and vjp_jvp along each
    choice of tangents (all together, then each alone), with the cotangent and tangents drawn."""

    forward: np.ndarray
    cotangent: np.ndarray
    tangents: dict[str, np.ndarray]
    gradients: dict[str, np.ndarray] = field(default_factory=dict)
    jvp: dict[tuple, np.ndarray] = field(default_factory=dict)
    second: dict[tuple, dict[str, np.ndarray]] = field(default_factory=dict)


def agrees(got, expected, scale: float):
    """Whether ``got`` is within ``ROUNDING`` epsilons of ``expected`` per unit of ``|expected| +
    max(1, scale)`` (entry by entry; ``scale``: the largest finite magnitude among the expected)."""
    return np.abs(np.asarray(got) - expected) <= ROUNDING * EPS * (np.abs(expected) + max(1.0, scale))


def load_text(model: OperatorModel, text: str) -> types.ModuleType:
    module = types.ModuleType(f"derive_proof_{model.name}")
    exec(compile(text, f"<kernel {model.name}>", "exec"), module.__dict__)  # the kernel just rendered
    return module


def variants(model: OperatorModel) -> list[tuple[OperatorModel, dict]]:
    """The model once per value of its formula-selecting parameter, with the keyword selecting it."""
    from ..model import registry

    choice = next((p for p in model.params if p.choices), None)
    if choice is None:
        return [(model, {})]
    return [(model if value == choice.default else registry.rebuild(model, **{choice.name: value}),
             {choice.name: value}) for value in choice.choices]


def size_cases(model: OperatorModel) -> list[dict]:
    """Assignments of distinct sizes, each axis taking a different size in each: 1, 2, 3 in turn
    for up to three axes; with four, two turns of 1 to 4 (the expansion grows as the product).
    Many rows come from the batch axes (``prove_layouts``), which cost the oracle nothing more."""
    dims = free_sizes(model.dims())
    count = max(3, len(dims))
    shifts = range(1, 3) if len(dims) > 3 else range(count)
    return [{d: (p + c) % count + 1 for p, d in enumerate(dims)} for c in shifts]


def prove_kernel(model: OperatorModel, text: str, seed: int = 0) -> None:
    prove_module(model, load_text(model, text), seed)


def prove_module(model: OperatorModel, module, seed: int = 0) -> None:
    """The proof of a loaded kernel (anything with its ``forward``, ``vjp``, ``jvp`` and ``vjp_jvp``: a target
    may pass one that calls the kernel with arrays of another library and returns NumPy arrays)."""
    prove_runs(model, {"": module}, seed)


def prove_runs(model: OperatorModel, runs: Mapping[str, object], seed: int = 0,
               first_sizes: int | None = None) -> None:
    """``prove_module`` for each of ``runs`` (a name for the messages -> a loaded kernel), the oracle
    evaluated once per call for all of them; ``first_sizes``: only that many of the ``size_cases``."""
    rng = np.random.default_rng(seed)
    for variant, selected in variants(model):
        params = _param_values(variant, rng)
        symbols = {p.symbol: v for p, v in params.items()}
        for sizes, case in cases(variant, size_cases(variant)[:first_sizes]):
            oracle = expanded(variant, tuple(sizes.items()))
            arrays = [None if shape is None else input_values(inp, shape, sizes, rng)
                      for inp, shape in zip(variant.inputs, case.shapes)]
            keywords = {**selected, **case.keywords, **{p.name: v for p, v in params.items()}}
            call = Call(variant, oracle, case, arrays, keywords)
            expected = _expected(call, symbols, rng)
            for name, module in runs.items():
                _check_call(replace(call, run=name), module, expected)


def _param_values(model: OperatorModel, rng: np.random.Generator) -> dict:
    return {p: param_value(p, rng) for p in model.params if p.symbol is not None}


def param_value(param, rng: np.random.Generator) -> float:
    """A value in the parameter's domain, or in (0.2, 1) without one (eps too: a misplaced eps shows)."""
    if param.domain is None:
        return float(rng.uniform(0.2, 1.0))
    return float(domains.draw(param.domain, (), rng))


def input_values(inp, shape: tuple, sizes: dict, rng: np.random.Generator) -> np.ndarray:
    """Values inside the input's domain (``model/domains.py``); class labels below their axis size."""
    if inp.domain == "index":
        return rng.integers(0, int(sp.sympify(inp.index_of).subs(sizes)), size=shape)
    if inp.domain == "positive":  # kept as it was drawn, so every built-in's proof draws the same numbers
        return np.abs(rng.standard_normal(shape)) + 0.5
    return domains.draw(inp.domain, shape, rng)


def _expected(call: Call, symbols: dict, rng: np.random.Generator) -> Expected:
    """The oracle's values for ``call`` (laid out like the user's arrays)."""
    model, case, oracle = call.model, call.case, call.oracle
    core = {inp.name: case.to_core(inp, a) for inp, a in zip(model.inputs, call.arrays)}
    core = {name: (_default(model, name, oracle) if a is None else a) for name, a in core.items()}
    batch = np.broadcast_shapes(*(np.shape(a)[:np.ndim(a) - len(oracle.in_shapes[n])] for n, a in core.items()))
    full = {n: np.broadcast_to(a, batch + oracle.in_shapes[n]) for n, a in core.items()}
    forward = case.from_core_output(oracle.forward(full, symbols, batch))
    cotangent = rng.standard_normal(np.shape(forward))
    jac = {inp.name: oracle.jacobian(inp.name, full, symbols, batch)
           for inp, a in zip(model.inputs, call.arrays) if inp.differentiable and a is not None}
    if not (np.isfinite(forward).all() and all(np.isfinite(j).all() for j in jac.values())):
        check_defined(model, oracle, full, symbols, batch)  # a NaN is never agreement: names the part
    dy = case.to_core_output(cotangent).reshape(batch + (-1,))
    given = {inp.name: a for inp, a in zip(model.inputs, call.arrays) if a is not None}
    ex = Expected(forward, cotangent, {name: rng.standard_normal(np.shape(given[name])) for name in jac})
    for name, jacobian in jac.items():
        gradient = np.einsum("...o,...oi->...i", dy, jacobian).reshape(batch + oracle.in_shapes[name])
        ex.gradients[name] = fit(case.from_core(model.input(name), gradient, given[name]), np.shape(given[name]))
    choices = [tuple(ex.tangents)] + ([(name,) for name in ex.tangents] if len(ex.tangents) > 1 else [])
    along = {by: np.broadcast_to(case.to_core(model.input(by), t), batch + oracle.in_shapes[by]).reshape(batch + (-1,))
             for by, t in ex.tangents.items()}
    hessians: dict = {}  # each (input, by) term evaluated once for all the choices of tangents
    for chosen in choices:
        total = sum((np.einsum("...oi,...i->...o", jac[by], along[by]) for by in chosen),
                    np.zeros(batch + (int(np.prod(oracle.out_shape)),)))
        ex.jvp[chosen] = case.from_core_output(total.reshape(batch + oracle.out_shape))
        ex.second[chosen] = {}
        for name in jac:
            for by in chosen:
                if (name, by) not in hessians:
                    hessians[(name, by)] = oracle.hessian_vector(name, by, full, symbols, dy, along[by], batch)
            entries = int(np.prod(oracle.in_shapes[name]))
            value = sum((hessians[(name, by)] for by in chosen), np.zeros(batch + (entries,)))
            value = case.from_core(model.input(name), value.reshape(batch + oracle.in_shapes[name]), given[name])
            ex.second[chosen][name] = fit(value, np.shape(given[name]))
    return ex


def check_defined(model: OperatorModel, oracle: Expanded, arrays: dict, params: dict, batch: tuple) -> None:
    """Raise ``UndefinedError`` unless the output and every Jacobian entry are finite at the sample:
    a NaN is never agreement, it means the inputs were drawn where the model is undefined."""
    values = oracle.arguments_for(arrays, params)
    for expr in (*oracle.outputs, *(d for name in oracle.jacobians for d in oracle.jacobians[name])):
        found = undefined_part(expr, values)
        if found is not None:
            node, value = found
            names = {p.symbol.name: p.name for p in model.params if p.symbol is not None}
            where = f"operator {model.name!r}" + (f" ({model.source})" if model.source else "")
            raise domains.undefined(where, node, domains.owners(node.free_symbols, [i.name for i in model.inputs],
                                                                names), value)


def _check_call(call: Call, module, ex: Expected) -> None:
    """Every function of ``module`` at ``call`` against the oracle's values; ``vjp`` and ``vjp_jvp``
    (all tangents given) also with each subset of the gradients as ``wrt``."""
    got = _run(call, "forward", module.forward, *call.arrays, **call.params)
    _compare(call, "forward", got, ex.forward)
    subsets = [None] + [tuple(s) for k in range(len(ex.gradients) + 1) for s in itertools.combinations(ex.gradients, k)]
    for wrt in subsets:
        keywords = call.params if wrt is None else {**call.params, "wrt": wrt}
        grads = _run(call, _with("vjp", wrt), module.vjp, ex.cotangent, *call.arrays, **keywords)
        _compare_entries(call, _with("vjp", wrt), grads, ex.gradients, wrt, "gradient")
    for chosen, expected in ex.jvp.items():
        given = tuple(ex.tangents[inp.name] if inp.name in chosen else None for inp in call.model.inputs)
        got = _run(call, "jvp", module.jvp, given, *call.arrays, **call.params)
        _compare(call, f"jvp along {', '.join(chosen)}", got, expected)
    for chosen, wrt in [(chosen, None) for chosen in ex.second] + [(next(iter(ex.second)), s) for s in subsets[1:]]:
        given = tuple(ex.tangents[inp.name] if inp.name in chosen else None for inp in call.model.inputs)
        keywords = call.params if wrt is None else {**call.params, "wrt": wrt}
        what = _with(f"vjp_jvp along {', '.join(chosen)}", wrt)
        got = _run(call, what, module.vjp_jvp, ex.cotangent, given, *call.arrays, **keywords)
        _compare_entries(call, what, got, ex.second[chosen], wrt, "entry")
    if getattr(module, "RESIDUALS", None) is not None:
        _check_residuals(call, module, ex, subsets)
    if _takes_buffers(module) and all(a is None or isinstance(a, np.ndarray) for a in call.arrays):
        _check_buffers(call, module, ex)


def _takes_buffers(module) -> bool:
    try:
        return "out" in inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return False


def _buffer(shape: tuple) -> np.ndarray:
    """A caller's buffer: NaN everywhere, so an entry the kernel leaves unwritten cannot agree."""
    return np.full(shape, np.nan)


def _check_buffers(call: Call, module, ex: Expected) -> None:
    """A kernel that takes ``out=``: forward, vjp, jvp and vjp_jvp write every entry into the caller's
    buffers (NaN-filled) and return those buffers, with the values they return without them."""
    inputs = call.model.inputs
    out = _buffer(ex.forward.shape)
    got = _run(call, "forward into out=", module.forward, *call.arrays, out=out, **call.params)
    _same_buffer(call, "forward into out=", got, out)
    _compare(call, "forward into out=", out, ex.forward)
    grads = tuple(_buffer(ex.gradients[i.name].shape) if i.name in ex.gradients else None for i in inputs)
    got = _run(call, "vjp into out=", module.vjp, ex.cotangent, *call.arrays, out=grads, **call.params)
    _check_into(call, "vjp into out=", got, grads, ex.gradients, "gradient")
    if not ex.jvp or not ex.second:
        return
    chosen, expected = next(iter(ex.jvp.items()))
    given = tuple(ex.tangents[inp.name] if inp.name in chosen else None for inp in inputs)
    out = _buffer(expected.shape)
    got = _run(call, "jvp into out=", module.jvp, given, *call.arrays, out=out, **call.params)
    _same_buffer(call, "jvp into out=", got, out)
    _compare(call, "jvp into out=", out, expected)
    chosen = next(iter(ex.second))
    given = tuple(ex.tangents[inp.name] if inp.name in chosen else None for inp in inputs)
    entries = tuple(_buffer(ex.second[chosen][i.name].shape) if i.name in ex.second[chosen] else None for i in inputs)
    got = _run(call, "vjp_jvp into out=", module.vjp_jvp, ex.cotangent, given, *call.arrays, out=entries,
               **call.params)
    _check_into(call, "vjp_jvp into out=", got, entries, ex.second[chosen], "entry")


def _check_into(call: Call, what: str, got, buffers: tuple, expected: dict[str, np.ndarray], entry: str) -> None:
    _compare_entries(call, what, got, expected, None, entry)
    for value, buffer in zip(got, buffers):
        if buffer is not None:
            _same_buffer(call, what, value, buffer)
    _compare_entries(call, f"{what} (the buffers)", buffers, expected, None, entry)


def _same_buffer(call: Call, what: str, got, buffer: np.ndarray) -> None:
    if got is not buffer:
        raise ProofError(f"{_where(call)}: {what} returns a new array, not the caller's buffer")


def _check_residuals(call: Call, module, ex: Expected, subsets: list) -> None:
    """A kernel that saves residuals: forward(..., residuals=True) and vjp, jvp and vjp_jvp given
    them (which then read them instead of recomputing) agree with the oracle as without them."""
    found = _run(call, "forward with residuals=True", module.forward, *call.arrays, residuals=True, **call.params)
    if not isinstance(found, tuple) or len(found) != 2 or not isinstance(found[1], dict):
        raise ProofError(f"{_where(call)}: forward with residuals=True returns {type(found).__name__}, "
                         "not (output, residuals)")
    got, saved = found
    _compare(call, "forward with residuals=True", got, ex.forward)
    for wrt in subsets:
        keywords = {**call.params, "residuals": saved, **({} if wrt is None else {"wrt": wrt})}
        what = _with("vjp with residuals", wrt)
        _compare_entries(call, what, _run(call, what, module.vjp, ex.cotangent, *call.arrays, **keywords),
                         ex.gradients, wrt, "gradient")
    for chosen, expected in ex.jvp.items():
        given = tuple(ex.tangents[inp.name] if inp.name in chosen else None for inp in call.model.inputs)
        what = f"jvp with residuals along {', '.join(chosen)}"
        _compare(call, what, _run(call, what, module.jvp, given, *call.arrays, residuals=saved, **call.params),
                 expected)
    chosen = next(iter(ex.second))
    given = tuple(ex.tangents[inp.name] if inp.name in chosen else None for inp in call.model.inputs)
    got = _run(call, "vjp_jvp with residuals", module.vjp_jvp, ex.cotangent, given, *call.arrays,
               residuals=saved, **call.params)
    _compare_entries(call, "vjp_jvp with residuals", got, ex.second[chosen], None, "entry")


def _with(what: str, wrt: tuple | None) -> str:
    return what if wrt is None else f"{what} with wrt={wrt!r}"


def _compare_entries(call: Call, what: str, got, expected: dict[str, np.ndarray], wrt: tuple | None,
                     entry: str) -> None:
    """One entry per input: the expected value where it is wanted (given, differentiable, in ``wrt``), else None."""
    inputs = call.model.inputs
    if not isinstance(got, tuple) or len(got) != len(inputs):
        raise ProofError(f"{_where(call)}: {what} returns {got!r}, not one entry per input")
    for inp, value in zip(inputs, got):
        if inp.name in expected and (wrt is None or inp.name in wrt):
            _compare(call, f"{what}, {entry} of {inp.name!r}", value, expected[inp.name])
        elif value is not None:
            reason = "which is not in wrt" if inp.name in expected else "which has none"
            raise ProofError(f"{_where(call)}: {what} returns a {entry} for {inp.name!r}, {reason}")


def _default(model: OperatorModel, name: str, oracle: Expanded) -> np.ndarray:
    """An omitted optional input as the value it stands for (1 for a scale, 0 for a shift)."""
    return np.full(oracle.in_shapes[name], float(model.input(name).default or 0.0))


def _run(call: Call, what: str, function, *args, **keywords):
    try:
        return function(*args, **keywords)
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
    scale = float(np.max(np.abs(expected), where=finite, initial=0.0))
    with np.errstate(invalid="ignore"):
        bad = finite & ~agrees(got, np.where(finite, expected, 0.0), scale)
    if bad.any():
        at = tuple(int(v) for v in np.argwhere(bad)[0])
        raise ProofError(f"{_where(call)}: {what} differs from the oracle at entry {at} "
                         f"({int(bad.sum())} of {bad.size}): kernel {got[at]!r}, oracle {expected[at]!r}")
