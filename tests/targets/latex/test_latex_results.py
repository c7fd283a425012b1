"""The result fragment (``<op>-result.tex``): compact forms under the cited labels, numbered first so
their numbers do not move, each equation's proof status stated, and the document identified."""

from __future__ import annotations

import dataclasses
import re

import pytest
import sympy as sp
from helpers import LATEX, OPERATORS
from helpers.formulas import twin

from derive.calculus.pipeline import derive
from derive.model import registry
from derive.targets.latex.result import RESULT_KINDS, SHORT_PROOF
from derive.targets.latex.view import build_document
from derive.version import __version__

LABEL = re.compile(r"\\label\{(eq:[^}]*)\}")
GROUP = re.compile(r"((?:\\eqref\{[^}]*\}(?:--\\eqref\{[^}]*\})?(?:, )?)+): "
                   r"(definition|proven for every size|checked at random points[^;.]*)")
REF = re.compile(r"\\eqref\{([^}]*)\}(?:--\\eqref\{([^}]*)\})?")


def _stated(text: str) -> dict[str, str]:
    """Each label the fragment's proof paragraph names -> the status it gives; a range
    \\eqref{a}--\\eqref{b} names every label from a to b in the fragment's order."""
    order = LABEL.findall(text)
    stated = {}
    for refs, status in GROUP.findall(text):
        for first, last in REF.findall(refs):
            span = order[order.index(first):order.index(last) + 1] if last else [first]
            stated.update(dict.fromkeys(span, status))
    return stated


def _result_equations(name: str) -> list[dict]:
    labels = set(LABEL.findall((LATEX / f"{name}-result.tex").read_text()))
    return [e for e in twin(name)["equations"] if e["label"] in labels]


@pytest.mark.parametrize("name", OPERATORS)
def test_the_results_are_numbered_first_in_the_body_as_in_the_fragment(name):
    result = LABEL.findall((LATEX / f"{name}-result.tex").read_text())
    body = LABEL.findall((LATEX / f"{name}-body.tex").read_text())
    assert result and body[:len(result)] == result
    kinds = {e["kind"] for e in _result_equations(name)}
    assert {"vjp", "jvp", "vjp_jvp"} <= kinds <= {"definition", *RESULT_KINDS}


@pytest.mark.parametrize("name", OPERATORS)
def test_every_result_equation_says_how_it_was_established(name):
    text = (LATEX / f"{name}-result.tex").read_text()
    stated = _stated(text)
    for equation in _result_equations(name):
        if equation["kind"] != "definition" or equation["label"].endswith("where-x-hat"):
            assert stated.get(equation["label"]) == SHORT_PROOF[equation["check"]], equation["label"]
    assert f"derive {__version__}" in text
    assert twin(name)["model_digest"] in text and twin(name)["derivation_digest"] in text


@pytest.mark.parametrize("name", OPERATORS)
def test_every_first_and_second_order_result_is_proven_for_every_size(name):
    """The VJP, JVP and vjp_jvp are derived from the contracted Jacobian by the engine's rules
    (contraction, then the compact form's chain): the document records that chain as the proof."""
    results = [e for e in _result_equations(name) if e["kind"] in ("vjp", "jvp", "vjp_jvp")]
    assert results
    for equation in results:
        assert equation["check"] == "symbolic", equation["label"]
        assert equation["rules"][:1] == (["differentiate"] if equation["rhs"] == "Integer(0)" else ["contract"])


@pytest.mark.parametrize("name", ["layernorm", "softmax"])
def test_the_cited_vjp_label_holds_the_form_the_kernels_compute(name):
    derivation = derive(registry.get(name))
    equations = {e["label"]: e for e in twin(name)["equations"]}
    for gradient in derivation.gradients:
        for kind in ("vjp", "jvp"):
            cited = equations[f"eq:{name}:{kind}-{gradient.input.name}"]
            assert cited["rhs"] == sp.srepr(derivation.kernel_form(gradient.input.name, kind).written)
            assert f"eq:{name}:{gradient.input.name}:{kind}-expanded" in equations  # the raw contraction


def test_result_numbers_do_not_move_when_the_derivation_steps_change():
    derivation = derive(registry.get("softmax"))
    shorter = dataclasses.replace(derivation, gradients=tuple(
        dataclasses.replace(g, steps=(g.steps[0], g.steps[-1])) for g in derivation.gradients))
    numbers = [{e.label: n for n, e in enumerate(build_document(d).equations, 1)} for d in (derivation, shorter)]
    assert len(numbers[0]) > len(numbers[1])  # the steps did change
    for label in ("eq:softmax:vjp-x", "eq:softmax:matrix-x", "eq:softmax:vjp_jvp-x"):
        assert numbers[0][label] == numbers[1][label], label


@pytest.mark.parametrize("name", ["layernorm", "rmsnorm"])
def test_a_norms_matrix_form_is_written_through_x_hat(name):
    """(1/sigma) diag(gamma) [I - 1 1^T/n - x_hat x_hat^T/n], as the issue writes it, not the centred
    x - mu 1 over sigma cubed; still proven for every size against the Jacobian."""
    text = (LATEX / f"{name}-result.tex").read_text()
    factored = next(line for line in text.splitlines() if f"eq:{name}:matrix-x-factored" in line)
    assert r"\boldsymbol{\hat{x}} \boldsymbol{\hat{x}}^{T}" in factored and r"\mu \mathbf{1}" not in text
    matrices = [e for e in _result_equations(name) if e["kind"] == "matrix"]
    assert matrices and all(e["check"] == "symbolic" for e in matrices)


def _over_output_axes(name: str) -> list[str]:
    """The differentiable inputs of operator ``name`` over exactly the output's axes."""
    model = registry.get(name)
    axes = tuple(idx.upper + 1 for idx in model.output_indices)
    return [inp.name for inp in model.differentiable_inputs if inp.dims and tuple(inp.dims) == axes]


@pytest.mark.parametrize("name", [n for n in OPERATORS if _over_output_axes(n)])
def test_a_vjp_is_written_in_the_outputs_letters(name):
    """x̄_{bgcs} beside y_{bgcs}, as a paper writes it (the derivation's own x̄_{kpqh} stays in its steps):
    an input over the output's axes has the output's subscript in its VJP and its second order."""
    text = (LATEX / f"{name}-result.tex").read_text()
    definition = next(line for line in text.splitlines() if f"\\label{{eq:{name}:definition}}" in line)
    letters = re.match(r"y_\{([^}]*)\} &=", definition).group(1)
    for inp in _over_output_axes(name):
        assert _vjp_opens(text, name, inp, letters), (inp, letters)


def _vjp_opens(text: str, name: str, inp: str, letters: str) -> bool:
    """Equation eq:<name>:vjp-<inp> opens with x̄_{letters} and its second order with x̄̇_{letters}."""
    lines = text.splitlines()
    for kind, opening in (("vjp", r"\bar{"), ("vjp_jvp", r"\dot{\bar{")):
        at = next(n for n, line in enumerate(lines) if f"\\label{{eq:{name}:{kind}-{inp}}}" in line)
        while lines[at - 1].rstrip().endswith(r"\notag \\"):  # the equation's earlier lines
            at -= 1
        first = lines[at]
        if not (first.startswith(opening) and re.match(r"[^&]*?\}_\{" + re.escape(letters) + r"\} &", first)):
            return False
    return True


def test_group_norms_parameters_are_written_in_the_outputs_letters():
    text = (LATEX / "group_norm-result.tex").read_text()
    for row in (r"\bar{\gamma}_{gc} &", r"\bar{\beta}_{gc} &", r"\bar{x}_{bgcs} &", r"\dot{\bar{x}}_{bgcs} &"):
        assert row in text, row
    assert "kpqh" not in text and "_{uv}" not in text


@pytest.mark.parametrize("name", ["layernorm", "rmsnorm"])
def test_a_parameter_shared_by_unwritten_batch_axes_is_said_to_be_summed_over_them(name):
    """γ̄_i = ȳ_i x̂_i holds per row: the fragment, read alone, must say the kernels add the rows up."""
    text = (LATEX / f"{name}-result.tex").read_text()
    assert r"not written; the kernels sum $\bar{\gamma}$ and $\bar{\beta}$ over them." in text
