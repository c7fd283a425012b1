"""The derive command line: list, show, generate, check, and its errors."""

from __future__ import annotations

import hashlib
import shutil
import unicodedata

from helpers import GENERATED
from helpers.commands import run_derive

from derive.cli import main
from derive.model import registry
from derive.pipeline.output import MANIFEST
from derive.targets import TARGETS


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


def test_generate_on_unknown_operator_writes_nothing(tmp_path, capsys):
    out = tmp_path / "gen"
    assert main(["generate", "softmax", "nope", "--out", str(out)]) == 2
    assert not out.exists()


def test_generate_then_check_then_stale_edit(tmp_path, capsys, rendered):
    out = tmp_path / "gen"
    assert main(["generate", "--out", str(out), "-q"]) == 0
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    folders = {target.folder for target in TARGETS}
    committed = [p for p in GENERATED.rglob("*") if p.is_file() and p.parent.name in folders]
    assert files == sorted([MANIFEST, *(p.relative_to(GENERATED).as_posix() for p in committed)])
    assert main(["check", "--out", str(out), "-q"]) == 0
    kernel = out / "numpy" / "softmax.py"
    kernel.write_text(kernel.read_text() + "# hand edit\n")
    (out / "numpy" / "retired.py").write_text("x = 1\n")  # as if derive wrote it for an operator since removed
    retired = hashlib.sha256(b"x = 1\n").hexdigest() + "  numpy/retired.py\n"  # its line, as the README gives it
    (out / MANIFEST).write_text((out / MANIFEST).read_text() + retired)
    (out / "numpy" / "mine.py").write_text("y = 2\n")  # a file of the user's own: never touched
    capsys.readouterr()
    assert main(["check", "--out", str(out), "-q"]) == 1
    captured = capsys.readouterr()
    assert "-# hand edit" in captured.out and "retired.py: stale" in captured.out and "mine.py" not in captured.out
    assert f"derive generate --out {out}" in captured.err
    assert main(["generate", "--out", str(out), "-q"]) == 0
    assert not (out / "numpy" / "retired.py").exists() and (out / "numpy" / "mine.py").read_text() == "y = 2\n"
    assert main(["check", "--out", str(out), "-q"]) == 0


def test_generated_folder_is_current(rendered):
    """generated/ equals a fresh render byte for byte (regenerate with `derive generate`); the render
    cache is new with the test run, so every entry was rendered by this code, in another process
    under another hash seed than generated/'s (conftest.RENDER_HASH_SEED): no timestamps, no
    hash-order dependence, in any file of the catalog."""
    result = run_derive(["check", "-q"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_help_lists_every_command():
    result = run_derive(["--help"])
    for command in ("list", "show", "generate", "check"):
        assert command in result.stdout


def test_generation_error_leaves_previous_output_intact(tmp_path, monkeypatch):
    out = tmp_path / "gen"
    shutil.copytree(GENERATED, out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    from derive.targets import render

    def broken(derivation, targets=render.TARGETS):
        raise render.RenderError("template numpy/kernel.py.jinja failed for test")

    monkeypatch.setattr("derive.pipeline.render.render", broken)  # seen only by an uncached, in-process render
    assert main(["generate", "--out", str(out), "-q", "--no-cache", "--jobs", "1"]) == 2
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
