"""The independent symbolic oracle (``derive.proof.oracle``): expand each model for n = 1..4 into scalar
symbols, run plain ``sympy.diff``, and require the engine's Jacobian entry (and its VJP) to agree exactly."""

from __future__ import annotations

import itertools
import random

import pytest
import sympy as sp
from helpers import OPERATORS
from helpers.formulas import concrete

from derive.calculus.pipeline import derive
from derive.model import registry

VARIANTS = [(name, {}) for name in OPERATORS] + [
    (name, {p.name: value}) for name in OPERATORS for p in registry.get(name).params
    for value in p.choices if value != p.default]
VARIANT_IDS = [name + "".join(f"-{k}={v}" for k, v in choice.items()) for name, choice in VARIANTS]


def size_cases(model, largest: int):
    """n = 1..largest for one-axis models; for more axes, every size 1 or 2 (at most 3 axes), or
    all ones, all twos and two mixed cases (4 axes)."""
    dims = model.dims()
    if len(dims) == 1:
        return [{dims[0]: n} for n in range(1, largest + 1)]
    if len(dims) <= 3:
        return [dict(zip(dims, combo)) for combo in itertools.product(range(1, 3), repeat=len(dims))]
    combos = [(1,) * len(dims), (2,) * len(dims), (1, 2) * (len(dims) // 2), (2, 1) * (len(dims) // 2)]
    return [dict(zip(dims, combo)) for combo in combos]


def exactly_equal(a: sp.Expr, b: sp.Expr, symbols: set, points: int = 5) -> bool:
    """Agreement: the difference simplifies to zero or, where SymPy cannot show that, it vanishes (to
    40 of 50 digits) at ``points`` random rational points, where a wrong formula would not."""
    difference = a - b
    if sp.cancel(difference) == 0 or sp.simplify(difference) == 0:  # cancel: an exact, quicker first try
        return True
    rng = random.Random(0)
    checked = 0
    for _ in range(10 * points):
        point = {s: sp.Rational(rng.randint(-9, 9), rng.randint(1, 5)) for s in symbols}
        point.update({s: sp.Rational(1, rng.randint(2, 9)) for s in symbols if str(s) == "epsilon"})
        scale = [sp.N(side.subs(point), 50) for side in (a, b)]
        if not all(value.is_finite for value in scale):
            continue  # a pole or a branch cut: draw another point
        if abs(sp.N(difference.subs(point), 50)) > 1e-40 * (1 + abs(scale[0]) + abs(scale[1])):
            return False
        checked += 1
        if checked == points:
            return True
    return False


def test_exactly_equal_decides_at_random_points_what_simplify_cannot():
    x = sp.Symbol("x")
    assert sp.simplify(sp.log(sp.exp(x)) - x) != 0 and sp.simplify(sp.sqrt(x ** 2) - x) != 0
    assert exactly_equal(sp.log(sp.exp(x)), x, {x})  # equal for every real x
    assert not exactly_equal(sp.sqrt(x ** 2), x, {x})  # not for x < 0
    assert exactly_equal((x ** 2 - 1) / (x - 1), x + 1, {x})  # simplify shows it


@pytest.mark.parametrize("name,choice", VARIANTS, ids=VARIANT_IDS)
def test_jacobian_entry_matches_plain_sympy_diff(name, choice):
    derivation = derive(registry.build(name, **choice))
    model = derivation.model
    for sizes in size_cases(model, 4):
        out_ranges = [range(int(d.subs(sizes))) for d in model.output_dims]
        for out_at in itertools.product(*out_ranges):
            y = concrete(model.output, sizes, dict(zip(model.output_indices, out_at)))  # once for every input
            for gradient in derivation.gradients:
                wrt_ranges = [range(int(d.subs(sizes))) for d in gradient.input.dims]
                for wrt_at in itertools.product(*wrt_ranges):
                    variable = sp.Symbol("_".join([gradient.input.name] + [str(v) for v in wrt_at]))
                    expected = sp.diff(y, variable)
                    values = dict(zip(model.output_indices, out_at)) | dict(zip(gradient.wrt_indices, wrt_at))
                    engine = concrete(gradient.jacobian, sizes, values)
                    assert exactly_equal(engine, expected, engine.free_symbols | expected.free_symbols), (
                        f"{name}: d y{out_at} / d {gradient.input.name}{wrt_at} at sizes {sizes}:\n"
                        f"engine {engine}\nsympy  {expected}")


@pytest.mark.parametrize("name,choice", VARIANTS, ids=VARIANT_IDS)
def test_vjp_matches_cotangent_weighted_sympy_diff(name, choice):
    derivation = derive(registry.build(name, **choice))
    model = derivation.model
    for sizes in size_cases(model, 3):
        out_ranges = [range(int(d.subs(sizes))) for d in model.output_dims]
        loss = 0
        for out_at in itertools.product(*out_ranges):
            weight = sp.Symbol("_".join(["dy"] + [str(v) for v in out_at]))
            loss += weight * concrete(model.output, sizes, dict(zip(model.output_indices, out_at)))
        for gradient in derivation.gradients:
            for wrt_at in itertools.product(*[range(int(d.subs(sizes))) for d in gradient.input.dims]):
                variable = sp.Symbol("_".join([gradient.input.name] + [str(v) for v in wrt_at]))
                expected = sp.diff(loss, variable)
                engine = concrete(gradient.vjp, sizes, dict(zip(gradient.wrt_indices, wrt_at)))
                assert exactly_equal(engine, expected, engine.free_symbols | expected.free_symbols), (
                    f"{name}: vjp for {gradient.input.name}{wrt_at} at sizes {sizes}")
