"""derive generate and check: what a generation writes, what check reports stale, generated/ as
the code writes it today, and a failed generation leaving the previous output intact."""

from __future__ import annotations

import hashlib
import shutil

import pytest
from helpers import GENERATED
from helpers.commands import run_derive

from derive.cli import main
from derive.model import registry
from derive.pipeline import generate
from derive.pipeline.output import MANIFEST
from derive.targets import TARGETS


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


def test_the_pool_starts_the_slowest_operators_first(monkeypatch):
    """Measured (cold, one process): attention takes about a third of the catalogue, then group_norm
    and batchnorm; started last, attention alone would keep the run going while the other worker idles."""
    handed: list[str] = []

    class Handed(Exception):
        pass

    def pool(names, *args, **kwargs):
        handed.extend(names)
        raise Handed

    monkeypatch.setattr(generate, "_derive_all", pool)
    with pytest.raises(Handed):
        generate.render_models([registry.get(name) for name in registry.names()], options=generate.Options(jobs=2))
    assert handed[0] == "scaled_dot_product_attention"
    assert set(handed[1:3]) == {"group_norm", "batchnorm"}
    assert sorted(handed) == sorted(registry.names())
