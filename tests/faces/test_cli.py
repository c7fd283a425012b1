"""The derive command line: list, show, help, and an unknown operator named with the close ones
(generate and check: pipeline/test_generate.py)."""

from __future__ import annotations

import unicodedata

from helpers.commands import run_derive

from derive.cli import main
from derive.model import registry


def test_list_names_every_operator_by_category(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in registry.names():
        assert name in out
    assert "normalization:" in out


def test_show_prints_definition_jacobian_vjp_and_jvp(capsys):
    assert main(["show", "rmsnorm", "--ascii"]) == 0
    out = capsys.readouterr().out
    for part in ("definition:", "where r =", "Jacobian", "vjp", "jvp", "with respect to gamma"):
        assert part in out


def test_show_writes_the_notation_of_the_documents(capsys):
    """ȳ the cotangent, x̄ an input's gradient, ẋ a tangent, ϵ, γ, σ, as in the PDFs; --ascii keeps
    the names claims are typed in (dy, epsilon, sigmoid)."""
    assert main(["show", "rmsnorm"]) == 0
    maths = capsys.readouterr().out.split("definition:", 1)[1]  # the summary above speaks in code names
    shown = ("ȳ[k]", "γ[k]", "x̄[k] =", "γ̄[k] =", "β̄[k] = ȳ[k]", "ẏ[i] +=", "ẋ[j]", "ϵ", "∂y[i] / ∂x[k]")
    for part in shown:
        assert unicodedata.normalize("NFC", part) in maths, part  # ȳ and ẋ composed, x̄ with its combining bar
    formulas = "\n".join(line for line in maths.splitlines() if not line.startswith("with respect to "))
    for code in ("dy", "dot_", "gamma", "ε", "epsilon"):
        assert code not in formulas, code
    assert main(["show", "silu"]) == 0
    maths = capsys.readouterr().out.split("definition:", 1)[1]
    assert "σ(x[i])" in maths and "sigmoid" not in maths
    assert main(["show", "rmsnorm", "--ascii"]) == 0
    ascii_maths = capsys.readouterr().out.split("definition:", 1)[1]
    assert "dy[k]*gamma[k]" in ascii_maths and "epsilon" in ascii_maths and ascii_maths.isascii()


def test_unknown_operator_is_a_clear_error_with_close_names(capsys):
    assert main(["show", "rmsnrom"]) == 2
    err = capsys.readouterr().err
    assert "unknown operator 'rmsnrom'" in err and "rmsnorm" in err and "Traceback" not in err


def test_help_lists_every_command():
    result = run_derive(["--help"])
    for command in ("list", "show", "generate", "check"):
        assert command in result.stdout
