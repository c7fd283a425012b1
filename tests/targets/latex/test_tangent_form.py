"""The second order written through the first (``targets/latex/tangent_form.py``): a norm's x̄̇ in x̄,
σ̇ and x̂̇, softmax's in ẏ, each tangent defined once and every displayed form checked, so a wrong
tangent or a wrong product rule is refused, never printed."""

from __future__ import annotations

import re

import pytest
import sympy as sp
from helpers import LATEX

from derive.calculus.equality import UnverifiedEqualityError
from derive.calculus.pipeline import derive
from derive.model import Input, OperatorModel, Param, index, registry, size
from derive.model.functions import sigmoid
from derive.targets.latex import tangent_form
from derive.targets.latex.view import build_document


def _equation(text: str, label: str) -> list[str]:
    """The lines of the equation labelled ``label`` (from the line after the previous label)."""
    lines = text.splitlines()
    end = next(n for n, line in enumerate(lines) if f"\\label{{{label}}}" in line)
    start = max(n for n, line in enumerate(lines[:end]) if "\\label{" in line or "\\begin{align}" in line) + 1
    return lines[start:end + 1]


@pytest.mark.parametrize("name", ["layernorm", "rmsnorm", "batchnorm", "group_norm"])
def test_a_norms_second_order_is_written_through_the_tangent_of_x_hat_in_a_few_lines(name):
    text = (LATEX / f"{name}-result.tex").read_text()
    assert f"\\label{{eq:{name}:where-dot_xhat}}" in text
    second = _equation(text, f"eq:{name}:vjp_jvp-x")
    assert r"\dot{\hat{x}}" in "".join(second) and r"\bar{x}" in "".join(second)
    assert len(second) <= 6, second
    assert r"\sum_{" not in "".join(second)  # no sum with limits: means and short sums only


def test_softmax_second_order_is_written_through_its_jvp():
    text = (LATEX / "softmax-result.tex").read_text()
    [line] = _equation(text, "eq:softmax:vjp_jvp-x")
    assert re.search(r"\\dot\{y\}_\{i\}", line) and "where-dot" not in text  # x̄̇_i, in y's letter


def test_a_wrong_tangent_definition_is_refused(monkeypatch):
    original = tangent_form._tidied
    monkeypatch.setattr(tangent_form, "_tidied", lambda expr, d, f: original(expr, d, f) * sp.Rational(11, 10))
    with pytest.raises(UnverifiedEqualityError, match="where-dot"):
        build_document(derive(registry.get("layernorm")))


def test_a_product_rule_that_drops_the_scale_is_refused(monkeypatch):
    monkeypatch.setattr(tangent_form, "scaled_product_rule",
                        lambda expr, names, scales, whole: tangent_form.along(expr, set(names) - set(scales)))
    with pytest.raises(UnverifiedEqualityError, match="vjp_jvp"):
        build_document(derive(registry.get("rmsnorm")))


def _gated_rmsnorm() -> OperatorModel:
    """Notebook 4's gated RMSNorm, u_i = x_i sigmoid(z_i) normalised: x-hat moves with x and with z."""
    n = size("n")
    i, j = index("i", n), index("j", n)
    x, z = Input("x", (n,)), Input("z", (n,))
    eps = sp.Symbol("epsilon", positive=True)
    rms = sp.sqrt(sp.Sum((x[j] * sigmoid(z[j])) ** 2, (j, 0, n - 1)) / n + eps)
    return OperatorModel(name="gated_rmsnorm", summary="x sigmoid(z) / rms", category="normalization",
                         inputs=(x, z), params=(Param("eps", 1e-6, eps, "inside the root"),),
                         output_indices=(i,), output=x[i] * sigmoid(z[i]) / rms, where=(("r", rms),))


def test_an_input_that_moves_x_hat_with_another_has_its_own_jvp():
    """Regression (notebook 4): x-hat-dot, the tangent along every input, is not the JVP of x alone
    when a gate z moves x-hat too; that JVP is then shown in full, and the document builds."""
    document = build_document(derive(_gated_rmsnorm()))
    equations = {e.label: e for e in document.equations}
    assert r"\dot{\hat{x}}" not in "".join(equations["eq:gated_rmsnorm:jvp-x"].rhs_lines)
    assert r"\dot{\hat{x}}" in "".join(equations["eq:gated_rmsnorm:vjp_jvp-x"].rhs_lines)


def test_a_mean_printed_for_a_sum_it_does_not_stand_for_is_refused(monkeypatch):
    """The means a document prints (``display.means``) are checked against the sums they replace."""
    from derive.display.means import Mean
    from derive.targets.latex import equations

    def forgetful(expr, sizes):  # every sum shown as a mean, whatever divides it
        return expr.replace(lambda e: isinstance(e, sp.Sum), lambda e: Mean(e.function, *e.limits))

    monkeypatch.setattr(equations, "with_means", forgetful)
    with pytest.raises(UnverifiedEqualityError, match="means printed"):
        build_document(derive(registry.get("layernorm")))
