"""The engine's second order (``Derivation.vjp_jvp``) against the oracle's Hessian.

The oracle expands the model into scalar symbols and differentiates each output entry twice with
plain ``sympy.diff``; the engine's expression, written out at the same sizes, must give
``sum_o dy[o] sum_b sum_m d2 y[o] / d a[k] d b[m] dot_b[m]`` for every entry ``k``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy as sp

from derive.calculus.concrete import expand
from derive.calculus.pipeline import COTANGENT, derive, tangent_name
from derive.model import registry
from derive.proof.oracle import entry, expanded

OPERATORS = ("div", "softmax", "rmsnorm", "layernorm", "cross_entropy")


def _values(model, oracle, rng) -> dict[str, np.ndarray]:
    arrays = {}
    for inp in model.inputs:
        shape = oracle.in_shapes[inp.name]
        if inp.domain == "index":
            arrays[inp.name] = rng.integers(0, int(sp.sympify(inp.index_of).subs(oracle.sizes)), size=shape)
        else:
            values = rng.standard_normal(shape)
            arrays[inp.name] = np.abs(values) + 0.5 if inp.domain != "real" else values
    return arrays


@pytest.mark.parametrize("name", OPERATORS)
def test_vjp_jvp_is_the_oracle_hessian_vector_product(name: str) -> None:
    model = registry.get(name)
    derivation = derive(model)
    sizes = {dim: 2 + position for position, dim in enumerate(model.dims())}
    oracle = expanded(model, tuple(sizes.items()))
    rng = np.random.default_rng(7)
    arrays = _values(model, oracle, rng)
    params = {p.symbol: 0.37 for p in model.params if p.symbol is not None}
    dy = rng.standard_normal(oracle.out_shape)
    tangents = {i.name: rng.standard_normal(oracle.in_shapes[i.name]) for i in model.differentiable_inputs}
    named = {**arrays, COTANGENT: dy, **{tangent_name(n): t for n, t in tangents.items()}}
    values = {sp.Symbol(entry(n, at).name): a[at] for n, a in named.items()
              for at in itertools.product(*(range(k) for k in np.shape(a)))}
    values.update({sp.Symbol(s.name): v for s, v in params.items()})
    for gradient in derivation.gradients:
        a = gradient.input.name
        expected = sum(np.einsum("o,oim,m->i", dy.ravel(), oracle.hessian(a, b, arrays, params, ()), t.ravel())
                       for b, t in tangents.items())
        expr = derivation.vjp_jvp(a)
        got = []
        for at in itertools.product(*(range(k) for k in oracle.in_shapes[a])):
            written = expand(expr, sizes, dict(zip(gradient.wrt_indices, at)))
            written = written.xreplace({s: sp.Symbol(s.name) for s in written.free_symbols})
            got.append(float(written.xreplace(values)))
        np.testing.assert_allclose(got, np.ravel(expected), rtol=1e-10, atol=1e-12, err_msg=f"{name} by {a}")


def test_terms_skip_inputs_that_do_not_reach_the_gradient() -> None:
    derivation = derive(registry.get("rmsnorm"))
    assert [t.by.name for t in derivation.second_order("x")] == ["x", "gamma"]
    assert [t.by.name for t in derivation.second_order("gamma")] == ["x"]  # linear in gamma
