"""The proof's tolerance (``derive.proof.kernel.agrees``): ``ROUNDING`` float64 epsilons per unit of
|entry| + max(1, the largest entry).  A kernel off by a relative 1e-5 in one entry of any output
is refused, and so is one off by 1e-10 in its largest entry; the built-in kernels' own rounding is
not refused, at seeds other than the one ``derive generate`` proves with.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
from helpers.kernels import load_kernel

from derive.model import registry
from derive.proof.kernel import EPS, ROUNDING, ProofError, agrees, prove_module

FUNCTIONS = ("forward", "vjp", "jvp", "vjp_jvp")


def _off(kernel, function: str, position: int | None, pick, factor: float) -> types.SimpleNamespace:
    """``kernel`` with one entry (``pick`` of the array) of one output scaled by ``factor`` in every
    call: ``function``'s result, or its entry for input ``position``."""
    def call(*args, **keywords):
        got = getattr(kernel, function)(*args, **keywords)
        value = got if position is None else got[position]
        if value is None:
            return got
        if isinstance(value, np.ndarray) and value.dtype == np.float64 and "out" in keywords:
            value.flat[pick(np.abs(value).ravel())] *= factor  # in the caller's buffer, which is returned
            return got
        value = np.array(value, dtype=np.float64)
        value.flat[pick(np.abs(value).ravel())] *= factor
        return value if position is None else tuple(value if p == position else g for p, g in enumerate(got))

    return types.SimpleNamespace(**{name: call if name == function else getattr(kernel, name) for name in FUNCTIONS})


def smallest_significant(magnitudes: np.ndarray) -> int:
    """The smallest entry of at least 1e-6 of max(1, the largest): the least the tolerance must see."""
    floor = 1e-6 * max(1.0, float(magnitudes.max(initial=0.0)))
    return int(np.argmin(np.where(magnitudes >= floor, magnitudes, np.inf)))


@pytest.mark.parametrize("function,position,what", [
    ("forward", None, "forward"),
    ("vjp", 0, "gradient of 'x'"), ("vjp", 1, "gradient of 'gamma'"), ("vjp", 2, "gradient of 'beta'"),
    ("jvp", None, "jvp along"),
    ("vjp_jvp", 0, "entry of 'x'"), ("vjp_jvp", 1, "entry of 'gamma'"),  # beta's is 0: its gradient is dy
])
def test_a_relative_error_of_1e_5_in_one_entry_is_refused(function, position, what):
    kernel = _off(load_kernel("layernorm"), function, position, smallest_significant, 1 + 1e-5)
    with pytest.raises(ProofError, match=rf"{what}.* differs from the oracle"):
        prove_module(registry.get("layernorm"), kernel)


@pytest.mark.parametrize("name", ["layernorm", "softmax"])
def test_a_relative_error_of_1e_10_in_the_largest_entry_is_refused(name):
    """The tolerance stays within float64's rounding (a tolerance 1000 times looser accepts this)."""
    kernel = _off(load_kernel(name), "vjp", 0, np.argmax, 1 + 1e-10)
    with pytest.raises(ProofError, match=r"gradient of 'x' differs from the oracle"):
        prove_module(registry.get(name), kernel)


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "layernorm", "rmsnorm", "cross_entropy", "matmul"])
@pytest.mark.parametrize("seed", [1, 2])
def test_the_built_in_kernels_rounding_is_accepted(name, seed):
    prove_module(registry.get(name), load_kernel(name), seed)


def test_agreement_is_relative_to_the_entry_and_to_the_largest_one():
    tolerance = ROUNDING * EPS
    expected = np.array([1e6, 1.0, 1e-3, 0.0])
    assert agrees(expected * (1 + 0.5 * tolerance), expected, 1e6).all()
    assert agrees(expected + 0.5 * tolerance * 1e6, expected, 1e6).all()  # small entries: the largest's scale
    assert not agrees(expected + 3 * tolerance * 1e6, expected, 1e6)[1:].any()
    assert agrees(np.array([0.5 * tolerance]), np.array([0.0]), 0.0).all()  # at least one unit of scale
    assert not agrees(np.array([2.5 * tolerance]), np.array([0.0]), 0.0).any()
