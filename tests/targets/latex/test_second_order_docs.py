"""The second order outside the engine: the documents' section and twin, `derive show --order 2`,
`derive claim --vjp-jvp`.

Each document's final ``vjp_jvp`` equations and printed Hessian blocks (rebuilt from its twin) are
evaluated at random points and compared with central finite differences of the generated kernel's
``vjp`` along the tangents; the twin proof that compares them with the oracle's Hessian before writing
is shown to refuse a wrong equation.  The claims below are derived
by hand (not the engine's printout); each wrong one is a plausible slip.
"""

from __future__ import annotations

import itertools
import json
import re

import helpers.finite_differences as fd
import numpy as np
import pytest
import sympy as sp
from helpers import LATEX, OPERATORS
from helpers.formulas import KernelCall, entries, model_array, twin
from helpers.kernels import load_kernel

import derive
from derive.calculus import pipeline
from derive.calculus.concrete import NotNumeric, evaluate, expand
from derive.calculus.indices import free_indices
from derive.cli import main
from derive.errors import ProofError
from derive.model import registry
from derive.model.functions import elementary
from derive.proof.srepr import load_srepr
from derive.proof.twin import prove_twin, second_sizes


# documents and twins ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", OPERATORS)
def test_each_document_ends_its_second_order_in_one_checked_vjp_jvp_per_input(name):
    model, equations = registry.get(name), twin(name)["equations"]
    finals = {e["input"]: e for e in equations if e["kind"] == "vjp_jvp"}
    assert list(finals) == [i.name for i in model.differentiable_inputs]
    assert all(e["check"] in ("symbolic", "random points") for e in finals.values())
    assert all(e["latex"].startswith(r"\dot{\bar{") for e in finals.values())
    body = (LATEX / f"{name}-body.tex").read_text(encoding="utf-8")
    section = body[body.index(r"\subsection{Second order}"):body.index(r"\subsection{How these")]
    vanishing = all(load_srepr(e["rhs"]) == 0 for e in finals.values())
    assert ("The second derivative vanishes" in section) == vanishing  # said in one sentence
    if vanishing:
        assert r"\paragraph{By" not in section
    for step in (e for e in equations if e["kind"] == "second-step"):
        assert step["rules"] or step["label"].endswith(":step-0"), step["label"]
        assert re.fullmatch(rf"eq:{name}:\w+-by-\w+:step-\d+", step["label"])


def test_short_and_full_step_lists_follow_the_rule():
    """softmax's steps are printed, one rule named per line; batchnorm's x-by-x block is shown short."""
    softmax = twin("softmax")["equations"]
    assert len([e for e in softmax if e["kind"] == "second-step"]) >= 5
    batchnorm = (LATEX / "batchnorm-body.tex").read_text(encoding="utf-8")
    assert not any(e["label"].startswith("eq:batchnorm:x-by-x:") for e in twin("batchnorm")["equations"])
    assert "too long to print; they apply, in order: (1) the sum rule" in batchnorm


@pytest.mark.parametrize("name", OPERATORS)
def test_final_vjp_jvp_equations_and_hessian_blocks_are_the_kernels_vjp_differentiated(name, rng):
    """The formula a user cites is the function they run, differentiated once more: each final
    ``vjp_jvp`` equation is the generated kernel's ``vjp`` differentiated along the tangents, and each
    printed Hessian block its derivative along each unit tangent of the input it is taken by (central
    finite differences in float64).  The oracle's Hessian checks the same equations exactly before the
    twin is written (``prove_twin``; see ``test_the_twin_proof_refuses_a_wrong_second_order_equation``)."""
    model, kernel = registry.get(name), load_kernel(name)
    sizes = second_sizes(model)
    arrays = {inp.name: model_array(inp, sizes, rng) for inp in model.inputs}
    params = {p.symbol: p.default for p in model.params if p.symbol is not None}
    out_shape = tuple(int(d.subs(sizes)) for d in model.output_dims)
    dy = rng.standard_normal(out_shape)
    tangents = {i.name: rng.standard_normal(arrays[i.name].shape) for i in model.differentiable_inputs}
    values = entries({**arrays, "dy": dy, **{f"dot_{n}": t for n, t in tangents.items()}}) | params
    values = {symbol: float(value) for symbol, value in values.items()}
    call = KernelCall(model, sizes)
    inputs = [call.to_user(inp, arrays[inp.name]) for inp in model.inputs]
    user_out = np.shape(kernel.forward(*inputs, **call.params))
    names = [inp.name for inp in model.inputs]

    def along(a: str, directions: dict) -> np.ndarray:
        """d vjp(dy, inputs)[a] along ``directions`` (input name -> array), by central differences."""
        def gradient(*moved, **keywords):
            return np.reshape(kernel.vjp(dy.reshape(user_out), *moved, **keywords)[names.index(a)],
                              arrays[a].shape)

        given = [call.to_user(inp, directions[inp.name]) if inp.name in directions else None for inp in model.inputs]
        return fd.jvp(gradient, given, inputs, call.params)

    checked = 0
    for equation in (e for e in twin(name)["equations"] if e["kind"] in ("vjp_jvp", "hessian")):
        a = equation["input"]
        axes = tuple(pipeline.wrt_entry(model, model.input(a)).indices)
        if equation["kind"] == "vjp_jvp":
            expected = along(a, tangents)
        else:
            by = load_srepr(equation["lhs"]).args[1]
            b = str(by.base) if isinstance(by, sp.Indexed) else str(by)
            axes = (*axes, *(by.indices if isinstance(by, sp.Indexed) else ()))
            columns = [along(a, {b: np.eye(arrays[b].size)[m].reshape(arrays[b].shape)}) for m in range(arrays[b].size)]
            expected = np.stack(columns, axis=-1).reshape(arrays[a].shape + arrays[b].shape)
        formula = load_srepr(equation["rhs"])
        assert free_indices(formula) <= set(axes), equation["label"]
        got = np.zeros(expected.shape)
        for at in itertools.product(*(range(n) for n in expected.shape)):
            got[at] = _value(elementary(expand(formula, sizes, dict(zip(axes, at)))), values)
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6 * max(1.0, np.abs(expected).max()),
                                   err_msg=equation["label"])
        checked += 1
    assert checked == len(model.differentiable_inputs) + sum(e["kind"] == "hessian" for e in twin(name)["equations"])


def _value(expr: sp.Expr, values: dict) -> float:
    """``expr`` at ``values`` in float64 (in 30 digits where it holds a constant such as pi)."""
    try:
        return evaluate(expr, values).real
    except NotNumeric:
        return float(expr.xreplace(values).evalf(30))


def test_the_twin_proof_refuses_a_wrong_second_order_equation():
    """A factor of 2 slipped into softmax's final vjp_jvp is a ProofError before anything is written."""
    text = (LATEX / "softmax.json").read_text(encoding="utf-8")
    document = json.loads(text)
    prove_twin(registry.get("softmax"), text)  # the document as written passes
    final = next(e for e in document["equations"] if e["kind"] == "vjp_jvp")
    final["rhs"] = f"Mul(Integer(2), {final['rhs']})"
    with pytest.raises(ProofError, match="eq:softmax:vjp_jvp-x"):
        prove_twin(registry.get("softmax"), json.dumps(document))


# derive show --order 2 ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["matmul", "add"])
def test_show_order_2_ends_each_input_in_its_vjp_jvp(name, capsys):
    model = registry.get(name)
    assert main(["show", "--order", "2", "--ascii", name]) == 0
    out = capsys.readouterr().out
    assert "Jacobian" not in out and "second order" in out
    blocks = out.split("with respect to ")[1:]
    assert [b.split(":")[0] for b in blocks] == [i.name for i in model.differentiable_inputs]
    for inp, block in zip(model.differentiable_inputs, blocks):  # the vjp_jvp last, after the blocks
        assert block.count(f"vjp_jvp   dot_d{inp.name}") == 1, block
        assert block.index(f"vjp_jvp   dot_d{inp.name}") > max(block.rfind("  by "), block.rfind("do not reach"))
    terms = {i.name: pipeline.derive(model).second_order(i.name) for i in model.differentiable_inputs}
    for inp, block in zip(model.differentiable_inputs, blocks):
        assert (f"dot_d{inp.name}[" + ", ".join(map(str, pipeline.derive(model).gradient(inp.name).wrt_indices))
                + "] = 0" in block) == (not terms[inp.name])


def test_show_order_2_in_the_documents_notation(capsys):
    assert main(["show", "--order", "2", "softmax"]) == 0
    out = capsys.readouterr().out
    assert "Jacobian" not in out and "ȳ" in out and "ẋ" in out
    assert out.index("vjp       x̄[k] =") < out.index("∂x̄[k] / ∂x[") < out.index("vjp_jvp   x̄̇[k] =")


@pytest.mark.parametrize("order", ["3", "0", "two"])
def test_show_refuses_an_order_other_than_1_or_2_in_one_line(order, capsys):
    assert main(["show", "--order", order, "softmax"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"derive: error: --order {order}: the order is 1")


# derive claim --vjp-jvp ---------------------------------------------------------------------------
SECOND_ORDER_CLAIMS = [
    # operator, input, a hand-derived vjp_jvp, a plausible slip
    ("softmax", "x",  # d[y (dy - <dy, y>)] with dy' = y (dot_x - <dot_x, y>)
     "y[k]*(dot_x[k] - sum(dot_x[j]*y[j], j))*(dy[k] - sum(dy[j]*y[j], j))"
     " - y[k]*sum(dy[j]*y[j]*(dot_x[j] - sum(dot_x[l]*y[l], l)), j)",
     "y[k]*(dot_x[k] - sum(dot_x[j]*y[j], j))*(dy[k] - sum(dy[j]*y[j], j))"),
    ("rmsnorm", "gamma",  # d[dy x / r] with dr = mean(x dot_x) / r
     "dy[k]*(dot_x[k]/r - x[k]*mean(x[j]*dot_x[j], j)/r**3)", "dy[k]*dot_x[k]/r"),
    ("mul", "a", "dy[k]*dot_b[k]", "dy[k]*dot_a[k]"),
]


@pytest.mark.parametrize("name,wrt,true,false", SECOND_ORDER_CLAIMS, ids=[c[0] for c in SECOND_ORDER_CLAIMS])
def test_a_right_second_order_claim_is_accepted_and_a_wrong_one_refused(name, wrt, true, false):
    right = derive.claim(name, wrt, true, "vjp_jvp", sizes=(1, 2))
    assert right.equal and right.oracle and right.counterexample is None
    wrong = derive.claim(name, wrt, false, "vjp_jvp", sizes=(1, 2))
    assert not wrong.equal and wrong.difference != 0
    bad = wrong.counterexample
    assert abs(bad.left - bad.right) > 1e-9 * max(1.0, abs(bad.left))


def test_a_claim_equal_to_a_wrong_engine_is_refused_by_the_oracle(monkeypatch):
    """The oracle (open derivatives by plain sympy.diff) is consulted too: were the engine's vjp_jvp
    off by a factor 2, a claim that repeats the mistake would still be refused."""
    true = SECOND_ORDER_CLAIMS[1][2]
    right = pipeline.Derivation.vjp_jvp
    monkeypatch.setattr(pipeline.Derivation, "vjp_jvp", lambda self, name: 2 * right(self, name))
    verdict = derive.claim("rmsnorm", "gamma", f"2*({true})", "vjp_jvp", sizes=(1, 2))
    assert not verdict.equal and verdict.counterexample is not None


def test_claim_vjp_jvp_on_the_command_line(capsys):
    name, wrt, true, false = SECOND_ORDER_CLAIMS[1]
    assert main(["claim", name, "--wrt", wrt, "--vjp-jvp", true, "--sizes", "1,2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"claimed  dot_d{wrt}[k] = ") and "EQUAL" in out and "oracle" in out
    assert main(["claim", name, "--wrt", wrt, "--vjp-jvp", false, "--sizes", "1,2"]) == 1
    out = capsys.readouterr().out
    assert "NOT EQUAL: a counterexample at n = 1" in out and "dot_x" in out and "difference" in out
    assert main(["claim", name, "--wrt", wrt, "--vjp-jvp", "dy[k]*__import__('os')"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
