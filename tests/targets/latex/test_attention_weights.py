"""Attention's results through its weights (``targets/latex/weights.py``): P = softmax(q k^T / sqrt(E))
and P-bar = y-bar v^T named and defined, every result written through them (no exponential left),
the second order through their tangents; a wrong rewrite is refused by the document's checks."""

from __future__ import annotations

import pytest
import sympy as sp
from helpers import LATEX

from derive.calculus.equality import UnverifiedEqualityError
from derive.calculus.indices import canonical_dummies
from derive.calculus.pipeline import derive
from derive.model import registry
from derive.targets.latex import result, weights
from derive.targets.latex.view import build_document

NAME = "scaled_dot_product_attention"


def _results(text: str) -> str:
    return text[text.index(r"\emph{Result}"):text.index("How each was established")]


def test_the_results_name_p_and_p_bar_and_hold_no_exponential():
    text = (LATEX / f"{NAME}-result.tex").read_text()
    results = _results(text)
    for label in ("where-P", "where-bar-P", "where-dot_P", "where-dot_bar-P"):
        assert f"\\label{{eq:{NAME}:{label}}}" in results, label
    after = results[results.index(f"eq:{NAME}:where-bar-P"):]
    assert "e^{" not in after  # only P's own definition holds the exponential
    assert r"\bar{P}" in after and r"\dot{P}" in after


def test_q_bar_is_the_classic_form():
    """q-bar_ph = (1/sqrt E) (sum_l P_pl P-bar_pl k_lh - (sum_l P_pl k_lh) sum_l P_pl P-bar_pl), derived by hand."""
    derivation = derive(registry.get(NAME))
    found = weights.softmax_weights(derivation)
    assert found is not None
    expr = weights.through_weights(derivation.compact("q", "vjp").expr, found)
    p, h = derivation.gradient("q").wrt_indices
    P, bar = sp.IndexedBase(weights.WEIGHT, positive=True), sp.IndexedBase(weights.WEIGHT_BAR, real=True)
    k, E = sp.IndexedBase("k"), sp.Symbol("E", integer=True, positive=True)
    keys = next(i for i in expr.atoms(sp.Idx) if i not in (p, h) and str(i.upper) == "S - 1")
    l = sp.Idx(keys.label, (keys.lower, keys.upper))
    expected = (sp.Sum(P[p, l] * bar[p, l] * k[l, h], (l, 0, keys.upper))
                - sp.Sum(P[p, l] * k[l, h], (l, 0, keys.upper)) * sp.Sum(P[p, l] * bar[p, l], (l, 0, keys.upper)))
    assert canonical_dummies(sp.expand(expr * sp.sqrt(E))) == canonical_dummies(sp.expand(expected))


def test_other_models_have_no_weights():
    for name in ("softmax", "layernorm", "cross_entropy", "matmul"):
        assert weights.softmax_weights(derive(registry.get(name))) is None


def test_a_wrong_rewrite_through_the_weights_is_refused(monkeypatch):
    original = weights.through_weights

    def wrong(expr, found):
        written = original(expr, found)
        return None if written is None else written.xreplace(
            {a: a ** 2 for a in written.atoms(sp.Indexed) if str(a.base.label) == weights.WEIGHT_BAR})

    monkeypatch.setattr(weights, "through_weights", wrong)
    monkeypatch.setattr(result, "through_weights", wrong)
    with pytest.raises(UnverifiedEqualityError):
        build_document(derive(registry.get(NAME)))
