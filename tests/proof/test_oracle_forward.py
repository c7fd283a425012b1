"""The oracle's second derivatives by forward mode (``Expanded.hessian_forward``, ``hessian_vector``:
the rules of ``sympy.diff`` carried out on arrays over the Jacobian's DAG, which the proof uses)
against the Hessian that plain ``sympy.diff`` builds (``Expanded.hessian``)."""

from __future__ import annotations

import numpy as np
import pytest

from derive.model import registry
from derive.proof.kernel import input_values
from derive.proof.oracle import expanded

# Max (softmax's shift), Piecewise (leaky_relu), erf (gelu), Pow and Abs-free sums (layernorm), labels (cross_entropy)
OPERATORS = ("softmax", "leaky_relu", "gelu", "layernorm", "cross_entropy", "softplus")
BATCH = (2,)


@pytest.mark.parametrize("name", OPERATORS)
def test_forward_mode_hessian_is_sympy_diffs(name: str) -> None:
    model = registry.get(name)
    sizes = {dim: 2 + position for position, dim in enumerate(model.dims())}
    oracle = expanded(model, tuple(sizes.items()))
    rng = np.random.default_rng(3)
    arrays = {i.name: input_values(i, BATCH + oracle.in_shapes[i.name], sizes, rng) for i in model.inputs}
    params = {p.symbol: 0.37 for p in model.params if p.symbol is not None}
    dy = rng.standard_normal(BATCH + (int(np.prod(oracle.out_shape)),))
    for a in model.differentiable_inputs:
        for b in model.differentiable_inputs:
            exact = oracle.hessian(a.name, b.name, arrays, params, BATCH)
            np.testing.assert_allclose(oracle.hessian_forward(a.name, b.name, arrays, params, BATCH), exact,
                                       rtol=1e-12, atol=1e-12, err_msg=f"{name}: d2 / d{a.name} d{b.name}")
            tangent = rng.standard_normal(BATCH + (exact.shape[-1],))
            np.testing.assert_allclose(oracle.hessian_vector(a.name, b.name, arrays, params, dy, tangent, BATCH),
                                       np.einsum("...o,...oim,...m->...i", dy, exact, tangent),
                                       rtol=1e-10, atol=1e-12, err_msg=f"{name}: along d{b.name}")
