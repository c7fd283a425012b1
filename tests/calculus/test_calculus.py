"""The SymPy traps the differentiator exists for, as regression tests, and its rewrite rules."""

from __future__ import annotations

import random

import numpy as np
import pytest
import sympy as sp
from helpers.formulas import concrete

from derive.calculus.concrete import agree, expander, random_point, symbols_of
from derive.calculus.differentiate import DerivationError, Partial, differentiate
from derive.calculus.indices import canonical_dummies, free_indices
from derive.calculus.pipeline import derive
from derive.calculus.rules import collapse_kronecker_sum, simplify
from derive.model import registry
from derive.model.functions import elementary, sigmoid

n = sp.Symbol("n", integer=True, positive=True)
i, j, k = sp.Idx("i", n), sp.Idx("j", n), sp.Idx("k", n)
x = sp.IndexedBase("x")


def test_sum_over_entries_is_not_a_constant():
    """Seed trap: summing over a plain symbol makes SymPy treat the RMS as constant (derivative 0)."""
    plain = sp.Symbol("x")
    assert sp.diff(sp.sqrt(sp.Sum(plain**2, (plain, 1, n)) / n), plain) == 0
    rms = sp.sqrt(sp.Sum(x[j] ** 2, (j, 0, n - 1)) / n)
    derivative = simplify(differentiate(rms, x[k]))
    assert derivative != 0
    assert derivative.equals(x[k] / (n * rms))


def test_summation_index_clashing_with_the_derivative_index():
    """SymPy issue 21891: diff(Sum(x[i]**2, i), x[i]) gives Sum(2*x[i]) instead of 2*x[i]."""
    total = sp.Sum(x[i] ** 2, (i, 0, n - 1))
    assert isinstance(sp.diff(total, x[i]), sp.Sum)  # the trap, still present in SymPy
    assert simplify(differentiate(total, x[i])) == 2 * x[i]


def test_kronecker_sum_collapses_without_a_piecewise_guard():
    summed = sp.Sum(sp.KroneckerDelta(j, k) * x[j], (j, 0, n - 1))
    assert summed.doit().has(sp.Piecewise)  # the trap: SymPy guards the range
    assert collapse_kronecker_sum(summed) == x[k]


def test_collapse_refuses_an_index_outside_the_summation_range():
    m = sp.Symbol("m", integer=True, positive=True)
    wider = sp.Idx("q", m)
    summed = sp.Sum(sp.KroneckerDelta(j, wider) * x[j], (j, 0, n - 1))
    assert collapse_kronecker_sum(summed) == summed


def test_no_derivative_result_contains_range_guards_or_delta_sums():
    """A Piecewise may only come from the model (relu's branches on x), never guard an index range."""
    for name in registry.names():
        for gradient in derive(registry.get(name)).gradients:
            for expr in (gradient.jacobian, gradient.vjp, gradient.jvp):
                for piecewise in expr.atoms(sp.Piecewise):
                    for _, condition in piecewise.args:
                        assert condition == sp.true or condition.has(sp.Indexed), f"{name}: guard {condition}"
            for expr in (gradient.vjp, gradient.jvp):  # only one-hot deltas of a label survive
                for delta in expr.atoms(sp.KroneckerDelta):
                    assert not all(isinstance(a, sp.Idx) for a in delta.args), f"{name}: {expr}"


def test_canonical_dummies_make_equal_sums_cancel_and_never_capture():
    a = sp.Sum(x[j], (j, 0, n - 1))
    b = sp.Sum(x[k], (k, 0, n - 1))
    assert canonical_dummies(a - b) == 0
    nested = sp.Sum(x[k] * sp.Sum(x[j] * x[k], (j, 0, n - 1)), (k, 0, n - 1))
    renamed = canonical_dummies(nested)
    inner = [s for s in sp.preorder_traversal(renamed) if isinstance(s, sp.Sum)][1]
    assert len(inner.limits) == 1 and len(free_indices(inner)) == 1  # still couples to the outer index


def test_rmsnorm_jacobian_has_its_known_structure():
    """gamma_i (delta_ik / r - x_i x_k / (n r^3))."""
    (gradient,) = [g for g in derive(registry.get("rmsnorm")).gradients if g.input.name == "x"]
    gamma = sp.IndexedBase("gamma")
    eps = sp.Symbol("epsilon", positive=True)
    r = sp.sqrt(sp.Sum(x[sp.Idx("j", n)] ** 2, (sp.Idx("j", n), 0, n - 1)) / n + eps)
    (k_,) = gradient.wrt.indices
    expected = gamma[i] * (sp.KroneckerDelta(i, k_) / r - x[i] * x[k_] / (n * r**3))
    assert sp.simplify(canonical_dummies(gradient.jacobian - expected)) == 0


def test_layernorm_jacobian_columns_sum_to_zero():
    """Shift invariance: sum_i dy_i/dx_k = 0 for gamma = 1 (why the seed's 'no gradient' is wrong)."""
    derivation = derive(registry.get("layernorm"))
    gradient = derivation.gradient("x")
    ones = gradient.jacobian.subs(sp.IndexedBase("gamma")[i], 1)
    column = simplify(sp.Sum(ones, (i, 0, n - 1)))
    assert column == 0


def test_unknown_function_is_a_clear_error():
    f = sp.Function("f")
    try:
        differentiate(f(x[i]), x[k])
    except DerivationError as error:
        assert "no derivative known" in str(error) and "f" in str(error)
    else:
        raise AssertionError("expected a DerivationError")


def test_numeric_check_of_collapsed_softmax_vjp():
    """dx = p (dy - <dy, p>): the classic closed form, against the engine's expression numerically."""
    gradient = derive(registry.get("softmax")).gradient("x")
    values = np.array([0.3, -1.2, 2.0])
    cot = np.array([1.0, 0.5, -2.0])
    p = np.exp(values) / np.exp(values).sum()
    expected = p * (cot - np.dot(cot, p))
    (k_,) = gradient.wrt.indices
    for position in range(3):
        value = concrete(gradient.vjp, {n: 3}, {k_: position}).subs(
            {sp.Symbol(f"x_{q}"): values[q] for q in range(3)} | {sp.Symbol(f"dy_{q}"): cot[q] for q in range(3)})
        assert abs(float(value) - expected[position]) < 1e-12


def test_compare_finds_a_counterexample_and_accepts_the_raw_derivative():
    from derive.calculus.concrete import compare

    derivation = derive(registry.get("layernorm"))
    gradient = derivation.gradient("x")
    dims = derivation.model.dims()
    assert compare(gradient.steps[-1].expr, gradient.jacobian, dims, sizes=(1, 2, 3)) is None
    wrong = compare(gradient.jacobian, gradient.jacobian + sp.KroneckerDelta(*gradient.wrt.indices, 0) * 0 + 1e-6, dims)
    assert wrong is not None and "n=1" in str(wrong)


@pytest.mark.parametrize("name", ["silu", "layernorm"])
def test_the_numeric_checks_helpers_agree_with_sympy(name):
    """equality.sample_compare writes each side out unevaluated and walks it as a DAG: the symbols
    (``symbols_of``), the elementary form (``elementary``) and the value at a point are those of
    SymPy's own evaluated expansion, ``free_symbols`` and ``replace``."""
    derivation = derive(registry.get(name))
    gradient = derivation.gradients[0]
    sizes = {d: 2 for d in registry.get(name).dims()}
    for expr in (gradient.vjp, Partial(gradient.jvp, gradient.wrt) if name == "silu" else gradient.jvp):
        values = {index: 1 for index in free_indices(expr)}
        exact = expander(sizes)(expr, values)
        quick = expander(sizes, evaluate=False)(expr, values)
        assert symbols_of(exact) == exact.free_symbols and symbols_of(quick) == quick.free_symbols
        written = exact.replace(lambda e: isinstance(e, sp.Function) and hasattr(e, "as_elementary"),
                                lambda e: e.as_elementary())
        assert elementary(exact) == written and (written != exact or not exact.has(sigmoid))
        point = random_point(exact.free_symbols, random.Random(3))
        assert symbols_of(quick) == set(point)
        assert agree(elementary(quick), elementary(exact), point)


def test_an_equality_is_proved_for_every_size_by_the_rules_only_where_it_holds_for_every_size():
    from derive.calculus.equality import proved_by_rules

    n = sp.Symbol("n", integer=True, positive=True)
    i, k = sp.Idx("i", (0, n - 1)), sp.Idx("k", (0, n - 1))
    x, dy = sp.IndexedBase("x"), sp.IndexedBase("dy")
    mean = sp.Sum(x[i], (i, 0, n - 1)) / n
    # sum_i dy_i (delta_ik - 1/n) = dy_k - mean(dy): a delta collapsed, a sum split, for symbolic n
    contraction = sp.Sum(dy[i] * (sp.KroneckerDelta(i, k) - 1 / n), (i, 0, n - 1))
    assert proved_by_rules(contraction, dy[k] - sp.Sum(dy[i], (i, 0, n - 1)) / n)
    assert not proved_by_rules(contraction, dy[k] - sp.Sum(dy[i], (i, 0, n - 1)) / (n + 1))
    assert not proved_by_rules(mean, x[k])  # equal at n = 1 only
    assert not proved_by_rules(Partial(mean, x[k]), 1 / n)  # an open derivative is never "proved" so


def test_the_rule_proof_gives_up_past_its_budget_instead_of_expanding():
    from derive.calculus.equality import RULE_BUDGET, expanded_terms, proved_by_rules

    a, b, c, d = sp.symbols("a b c d")
    power = (a + b + c + d) ** 6  # 84 terms once expanded, up to 4**6 by the bound
    assert expanded_terms(power) > RULE_BUDGET >= expanded_terms(sp.expand(power))
    assert not proved_by_rules(power, sp.expand(power))  # given up at once: checked at points instead
    assert proved_by_rules(power, sp.expand(power), budget=4 ** 6)
