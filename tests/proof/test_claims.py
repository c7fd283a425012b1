"""`derive claim`: hand-derived formulas, true and false, for several operators; the two seed formulas.

The true formulas below are derived by hand (textbook forms, not the engine's printout); each false
one is a plausible mistake.  Counterexamples are re-evaluated independently with the NumPy kernels.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.kernels import load_kernel

import derive
from derive.cli import main

TRUE_AND_FALSE = [
    # operator, input, kind, a true formula, a false one
    ("rmsnorm", "x", "vjp", "gamma[k]*dy[k]/r - x[k]*sum(dy[j]*gamma[j]*x[j], j)/(n*r**3)",
     "gamma[k]*dy[k]/r - x[k]*sum(dy[j]*gamma[j]*x[j], j)/(n*r**2)"),
    ("rmsnorm", "gamma", "vjp", "dy[k]*x[k]/r", "dy[k]*x[k]"),
    ("rmsnorm", "x", "jvp", "gamma[i]*(dot_x[i]/r - x[i]*mean(x[j]*dot_x[j], j)/r**3)", "gamma[i]*dot_x[i]/r"),
    ("layernorm", "x", "vjp",
     "(gamma[k]*dy[k] - mean(gamma[j]*dy[j], j) - (x[k] - mu)*mean(gamma[j]*dy[j]*(x[j] - mu), j)/sigma**2)/sigma",
     "(gamma[k]*dy[k] - mean(gamma[j]*dy[j], j))/sigma"),
    ("layernorm", "beta", "vjp", "dy[k]", "dy[k]/sigma"),
    ("softmax", "x", "vjp", "y[k]*(dy[k] - sum(dy[j]*y[j], j))", "y[k]*dy[k]"),
    ("softmax", "x", "jacobian", "y[i]*(delta(i, k) - y[k])", "y[i]*(1 - y[k])"),
    ("matmul", "a", "vjp", "Sum(dy[p, j]*b[q, j], (j, 0, N - 1))", "2*Sum(dy[p, j]*b[q, j], (j, 0, N - 1))"),
    ("matmul", "b", "jacobian", "delta(j, q)*a[i, p]", "delta(j, q)"),
]


@pytest.mark.parametrize("name,wrt,kind,true,false", TRUE_AND_FALSE,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in TRUE_AND_FALSE])
def test_true_formula_is_equal_and_false_one_is_not(name, wrt, kind, true, false):
    right = derive.claim(name, wrt, true, kind)
    assert right.equal and right.counterexample is None
    wrong = derive.claim(name, wrt, false, kind)
    assert not wrong.equal and not wrong.symbolic
    bad = wrong.counterexample
    assert abs(bad.left - bad.right) > 1e-9 * max(1.0, abs(bad.left))
    assert wrong.difference != 0


def test_a_per_channel_intermediate_is_read_at_the_claims_channel():
    """batchnorm's mu and sigma are per channel c; in the gradient by x[k, p, q] they are read at channel p.

    Sizes 1 and 2 only: the numeric comparison expands every entry, and N = C = S = 4 takes minutes.
    """
    centred = ("gamma[p]*(dy[k, p, q] - mean(dy[j, p, l], j, l)"
               " - (x[k, p, q] - mu)*mean(dy[j, p, l]*(x[j, p, l] - mu), j, l)")
    right = derive.claim("batchnorm", "x", centred + "/sigma**2)/sigma", sizes=(1, 2))
    assert right.equal and right.symbolic
    wrong = derive.claim("batchnorm", "x", centred.replace("(x[k, p, q] - mu)", "x[k, p, q]") + "/sigma**2)/sigma",
                         sizes=(1, 2))
    assert not wrong.equal and wrong.counterexample is not None
    assert derive.claim("batchnorm", "gamma", "sum(dy[j, k, l]*(x[j, k, l] - mu), j, l)/sigma", sizes=(1, 2)).equal
    assert not derive.claim("batchnorm", "gamma", "sum(dy[j, k, l]*x[j, k, l], j, l)/sigma", sizes=(1, 2)).equal


def test_three_operators_at_least_are_covered():
    assert len({case[0] for case in TRUE_AND_FALSE}) >= 3


def test_claims_on_the_command_line_exit_0_and_1(capsys):
    assert main(["claim", "softmax", "--wrt", "x", "--vjp", "y[k]*(dy[k] - sum(dy[j]*y[j], j))"]) == 0
    out = capsys.readouterr().out
    assert "EQUAL: SymPy reduces derived - claimed to 0; they agree at random points for n = 1, 2, 3, 4" in out
    assert main(["claim", "softmax", "--wrt", "x", "--vjp", "y[k]*dy[k]", "--sizes", "2,3"]) == 1
    out = capsys.readouterr().out
    assert "NOT EQUAL: a counterexample at n = 2, k = 0:" in out
    for part in ("\n  x  = [", "\n  dy = [", "\n  derived = ", "\n  claimed = ", "difference (derived - claimed) = "):
        assert part in out


def test_undecided_symbolically_but_equal_numerically():
    """sin^2 + cos^2 = 1 inside a sum is beyond the sum rules: numbers decide, and the report says so."""
    formula = ("gamma[k]*dy[k]/r - x[k]*sum(dy[j]*gamma[j]*x[j], j)/(n*r**3) "
               "+ sum(sin(x[j])**2 + cos(x[j])**2, j) - n")
    verdict = derive.claim("rmsnorm", "x", formula)
    assert verdict.equal and not verdict.symbolic
    from derive.proof.claims import report
    assert "EQUAL: SymPy could not decide it symbolically; they agree at random points" in report(
        verdict, derive.load("rmsnorm"), formula)


# -- the two seed formulas --------------------------------------------------------------------------

# "dx = (1/N) * gamma * (N * dy - y * sum(dy * y) / RMS(x)^2)" where y is the operator's output
# (x / RMS(x) * gamma + beta), RMS(x) = sqrt(mean(x^2)) without eps, N the number of elements of the
# row and sum over the row: read in the engine's names, with eps fixed to 0.
CRATE = "(1/n)*gamma[k]*(n*dy[k] - y[k]*sum(dy[j]*y[j], j)/r^2)"
# "d y_i / d x_i = 1/RMS - x_i^2 / (n RMS^3)" for y_i = x_i / RMS(x): a diagonal Jacobian entry,
# with gamma = 1 and RMS without eps.
ARTICLE = "1/r - x[i]**2/(n*r**3)"


def test_seed_rmsnorm_backward_formula_is_not_equal(capsys):
    assert main(["claim", "rmsnorm", "--wrt", "x", "--fix", "epsilon=0", "--vjp", CRATE]) == 1
    out = capsys.readouterr().out
    assert "NOT EQUAL: a counterexample at n = 1, k = 0:" in out
    # still wrong in the simplest setting, gamma = 1 and beta = 0 (y = x / RMS)
    assert main(["claim", "rmsnorm", "--wrt", "x", "--fix", "epsilon=0", "--fix", "gamma=1", "--fix", "beta=0",
                 "--vjp", CRATE]) == 1
    # and the corrected form (one division of the whole bracket by RMS) is equal
    assert main(["claim", "rmsnorm", "--wrt", "x", "--fix", "epsilon=0", "--fix", "gamma=1", "--fix", "beta=0",
                 "--vjp", "(1/n)*(n*dy[k] - y[k]*sum(dy[j]*y[j], j))/r"]) == 0


def test_seed_rmsnorm_diagonal_derivative_is_equal(capsys):
    assert main(["claim", "rmsnorm", "--wrt", "x", "--diagonal", "--fix", "gamma=1", "--fix", "epsilon=0",
                 "--jacobian", ARTICLE]) == 0
    out = capsys.readouterr().out
    assert "claimed  d y[i] / d x[i] = " in out and "EQUAL: SymPy reduces derived - claimed to 0" in out


def test_seed_diagonal_formula_read_other_ways():
    # with eps kept inside r it still holds (d r / d x_k = x_k / (n r) either way)
    assert derive.claim("rmsnorm", "x", ARTICLE, "jacobian", diagonal=True, fixed={"gamma": "1"}).equal
    # but RMS written without eps, against the model with eps, is not
    plain = "1/sqrt(mean(x[j]**2, j)) - x[i]**2/(n*sqrt(mean(x[j]**2, j))**3)"
    assert not derive.claim("rmsnorm", "x", plain, "jacobian", diagonal=True, fixed={"gamma": "1"}).equal
    for eps in ("epsilon", "eps"):  # a parameter by its symbol or by its keyword name
        assert derive.claim("rmsnorm", "x", plain, "jacobian", diagonal=True, fixed={"gamma": "1", eps: "0"}).equal
    # and it is not the whole Jacobian: off the diagonal the entry is -x_i x_k / (n r^3)
    assert not derive.claim("rmsnorm", "x", ARTICLE, "jacobian", fixed={"gamma": "1", "epsilon": "0"}).equal


def test_seed_counterexample_checks_out_with_the_generated_kernel():
    """Re-evaluate the counterexample: the kernel's vjp gives 'derived', plain NumPy gives 'claimed'."""
    verdict = derive.claim("rmsnorm", "x", CRATE, "vjp", fixed={"epsilon": "0"}, sizes=(3,))
    bad = verdict.counterexample
    n, k = bad.sizes["n"], bad.indices["k"]
    point = {str(s): float(v) for s, v in bad.point.items()}
    x, gamma, beta, dy = (np.array([point[f"{a}_{p}"] for p in range(n)]) for a in ("x", "gamma", "beta", "dy"))
    kernel = load_kernel("rmsnorm")
    dx = kernel.vjp(dy, x, gamma, beta, eps=0.0)[0]
    assert dx[k] == pytest.approx(bad.left, rel=1e-9)
    y = kernel.forward(x, gamma, beta, eps=0.0)
    rms = np.sqrt(np.mean(x ** 2))
    claimed = gamma * (n * dy - y * np.sum(dy * y) / rms ** 2) / n
    assert claimed[k] == pytest.approx(bad.right, rel=1e-9)
    assert abs(dx[k] - claimed[k]) > 1e-6


def test_diagonal_needs_matching_axes(capsys):
    assert main(["claim", "matmul", "--wrt", "a", "--diagonal", "--jacobian", "b[q, j]"]) == 2
    assert "--diagonal needs the output axes (M, N) to match the axes of a (M, K)" in capsys.readouterr().err


def test_help_lists_claim_and_its_options(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "claim" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["claim", "--help"])
    out = capsys.readouterr().out
    for option in ("--wrt", "--vjp", "--jacobian", "--jvp", "--fix", "--diagonal", "--sizes", "--model"):
        assert option in out


def test_index_names_never_hide_an_input_name():
    """Inputs called q and k (as in attention): the derived entries use other index names, so a
    formula can say k[...] for the input."""
    import sympy as sp

    from derive.model import Input, OperatorModel, index, size

    n, e = size("n"), size("E")
    i, d = index("i", n), index("d", e)
    q, k = Input("q", (n, e)), Input("k", (n, e))
    model = OperatorModel(name="rowdot", summary="sum_d q[i, d] k[i, d]", category="custom", inputs=(q, k),
                          output_indices=(i,), output=sp.Sum(q[i, d] * k[i, d], (d, 0, e - 1)))
    gradient = derive.derive(model).gradient("q")
    assert not {str(idx) for idx in gradient.wrt_indices} & {"q", "k"}
    first, second = (str(idx) for idx in gradient.wrt_indices)
    assert derive.claim(model, "q", f"dy[{first}]*k[{first}, {second}]").equal
    assert not derive.claim(model, "q", f"dy[{first}]*q[{first}, {second}]").equal


# -- claims that confuse two axis sizes (issue 11): each axis gets its own length -----------------------

BATCHNORM_DX = ("gamma[p]*(dy[k, p, q] - sum(dy[j, p, l], j, l)/(N*S)"
                " - (x[k, p, q] - mu)*sum(dy[j, p, l]*(x[j, p, l] - mu), j, l)/(N*S*sigma**2))/sigma")


def test_batchnorm_dx_with_another_pair_of_sizes_is_not_equal():
    """N*N or C*S where N*S belongs: equal when every axis has one length, caught now that each has its own."""
    derivation = derive.derive(derive.load("batchnorm"))
    assert derive.claim(derivation, "x", BATCHNORM_DX, sizes=(1,)).equal
    for wrong in ("N*N", "C*S"):
        verdict = derive.claim(derivation, "x", BATCHNORM_DX.replace("N*S", wrong), sizes=(1,))
        assert not verdict.equal and verdict.counterexample is not None, wrong
        assert verdict.counterexample.sizes == {"N": 1, "C": 2, "S": 3}


def test_matmul_da_with_an_extra_factor_n_over_m_is_not_equal():
    right = "Sum(dy[p, j]*b[q, j], (j, 0, N - 1))"
    assert derive.claim("matmul", "a", right).equal
    verdict = derive.claim("matmul", "a", f"N/M*{right}")
    assert not verdict.equal and verdict.counterexample is not None


def test_a_difference_that_vanishes_only_at_the_sizes_tested_is_not_equal():
    """(n-1)(n-2)(n-3)(n-4) x[k] is zero at every size tested, not in general: the symbolic
    difference is known to be non-zero, so the verdict is NOT EQUAL with a point at a larger size."""
    verdict = derive.claim("rmsnorm", "gamma", "dy[k]*x[k]/r + (n - 1)*(n - 2)*(n - 3)*(n - 4)*x[k]")
    assert not verdict.equal
    bad = verdict.counterexample
    assert bad.sizes["n"] > 4 and abs(bad.left - bad.right) > 1e-9


def test_the_report_names_each_axis_length():
    from derive.proof.claims import report
    right = "Sum(dy[p, j]*b[q, j], (j, 0, N - 1))"
    verdict = derive.claim("matmul", "a", right, sizes=(1, 2))
    text = report(verdict, derive.load("matmul"), right)
    assert "they agree at random points for (M, N, K) = (1, 2, 3), (2, 3, 4)" in text


# -- string parameters and named intermediates of the claim's own ------------------------------------

GELU_TANH_VJP = ("dy[k]*(1 + tanh(c*(x[k] + 0.044715*x[k]**3)))/2"
                 " + dy[k]*x[k]*(1 - tanh(c*(x[k] + 0.044715*x[k]**3))**2)*c*(1 + 3*0.044715*x[k]**2)/2")


def test_fix_selects_a_string_parameter(capsys):
    formula = GELU_TANH_VJP.replace("c*", "sqrt(2/pi)*")
    assert main(["claim", "gelu", "--wrt", "x", "--fix", "approximate=tanh", "--vjp", formula]) == 0
    assert "EQUAL" in capsys.readouterr().out
    assert main(["claim", "gelu", "--wrt", "x", "--sizes", "1", "--vjp", formula]) == 1  # the exact gelu differs
    assert main(["claim", "gelu", "--wrt", "x", "--fix", "approximate=cubic", "--vjp", formula]) == 2
    assert "gelu's approximate is one of none, tanh" in capsys.readouterr().err


def test_let_names_an_intermediate(capsys):
    rstd = "1/sqrt(mean(x[j]**2, j) + eps)"
    formula = "gamma[k]*dy[k]*rstd - x[k]*rstd**3*mean(dy[j]*gamma[j]*x[j], j)"
    assert derive.claim("rmsnorm", "x", formula, let={"rstd": rstd}).equal
    assert not derive.claim("rmsnorm", "x", formula.replace("rstd**3", "rstd**2"), let={"rstd": rstd}).equal
    assert main(["claim", "rmsnorm", "--wrt", "x", "--let", f"rstd={rstd}", "--vjp", formula]) == 0
    # one --let may use an earlier one
    assert main(["claim", "rmsnorm", "--wrt", "x", "--let", "ms=mean(x[j]**2, j)", "--let", "rstd=1/sqrt(ms + eps)",
                 "--vjp", formula]) == 0
    capsys.readouterr()
    assert main(["claim", "rmsnorm", "--wrt", "x", "--let", "x=1", "--vjp", formula]) == 2
    assert "--let x: x is already a name of the formula" in capsys.readouterr().err
