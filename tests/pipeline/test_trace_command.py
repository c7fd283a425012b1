"""``derive generate --from FILE.py:FUNCTION --shape ... [--model-out FILE]``: a traced operator's files,
and its model file, which loads with --model and derives the same; every mistake is one error line,
exit 2, and nothing written (no kernel, no model file, a user's file untouched)."""

from __future__ import annotations

import shlex
import shutil

import pytest
from helpers import MODELS
from helpers.commands import one_error, snapshot
from helpers.readme import README, fenced, readme_section

from derive.cli import main


@pytest.fixture
def folder(tmp_path):
    shutil.copy(MODELS / "papers.py", tmp_path / "papers.py")
    (tmp_path / "odd.py").write_text("import numpy as np\n\n\ndef odd(x):\n    return np.sort(x)\n", encoding="utf-8")
    return tmp_path


FROM = ["--from", "papers.py:swiglu", "--shape", "a=n", "--shape", "b=n"]


def test_generate_from_a_function_writes_its_kernels_and_a_model_file_that_derives_the_same(folder, monkeypatch,
                                                                                            capsys):
    monkeypatch.chdir(folder)
    assert main(["generate", *FROM, "--out", "k", "--model-out", "swiglu_model.py", "-q"]) == 0
    kernel = (folder / "k" / "numpy" / "swiglu.py").read_text(encoding="utf-8")
    assert "regenerate with `derive generate --from papers.py:swiglu --shape a=n --shape b=n --out DIR`" in kernel
    text = (folder / "swiglu_model.py").read_text(encoding="utf-8")
    assert "@register" in text and "Written by derive (derive generate --from papers.py:swiglu" in text
    capsys.readouterr()
    assert main(["show", *FROM, "--ascii"]) == 0
    traced = capsys.readouterr().out
    assert main(["show", "--model", "swiglu_model.py", "--ascii"]) == 0
    assert capsys.readouterr().out == traced and "vjp" in traced
    # written again over its own earlier file: allowed (derive wrote it)
    assert main(["generate", *FROM, "--out", "k", "--model-out", "swiglu_model.py", "-q"]) == 0


@pytest.mark.parametrize("args, words", [
    (["--from", "odd.py:odd", "--shape", "x=n"], ["odd at line 5 of odd.py", "np.sort"]),
    (["--from", "papers.py:nothing", "--shape", "x=n"], ["no function 'nothing'", "mish"]),
    (["--from", "papers.py", "--shape", "x=n"], ["FILE.py:FUNCTION"]),
    (["--from", "papers.py:mish", "--shape", "x"], ["NAME=AXES"]),
    (["--from", "papers.py:mish", "--shape", "z=n"], ["no argument 'z'"]),
    (["--from", "papers.py:swiglu", "--shape", "a=n"], ["'b' has no shape"]),
    (["--from", "papers.py:swiglu", "--shape", "a=n", "--shape", "b=m"], ["do not broadcast"]),
    (["--from", "papers.py:mish", "--shape", "x=n", "--model", "papers.py"], ["not both"]),
    (["--shape", "x=n", "--model", "papers.py"], ["goes with --from"]),
])
def test_a_mistake_is_one_error_and_nothing_is_written(folder, monkeypatch, capsys, args, words):
    monkeypatch.chdir(folder)
    before = snapshot(folder)
    assert main(["generate", *args, "--out", "k", "--model-out", "m.py", "-q"]) == 2
    error = one_error(capsys)
    assert all(word in error for word in words), error
    assert snapshot(folder) == before


@pytest.mark.parametrize("target, words", [
    ("mine.py", ["derive did not write it"]),
    ("k/m.py", ["inside the output folder"]),
    ("m.txt", ["a Python file"]),
    ("missing/m.py", ["does not exist"]),
])
def test_the_model_file_never_replaces_a_users_file_nor_goes_into_the_output_folder(folder, monkeypatch, capsys,
                                                                                     target, words):
    monkeypatch.chdir(folder)
    (folder / "mine.py").write_text("# my own code\n", encoding="utf-8")
    (folder / "k").mkdir()
    before = snapshot(folder)
    assert main(["generate", *FROM, "--out", "k", "--model-out", target, "-q"]) == 2
    error = one_error(capsys)
    assert all(word in error for word in words), error
    assert snapshot(folder) == before


def test_the_readme_traced_examples_run_as_shown(tmp_path, monkeypatch, capsys):
    """The worked example's trace prints the output it shows; the section's file and commands work."""
    (example,) = [b for b in fenced(README, "python") if "derive.trace(rmsnorm" in b]
    shown = next(line for line in example.splitlines() if line.startswith("print(")).partition("# ")[2]
    exec(compile(example, "README.md", "exec"), {})  # the README's own example
    assert capsys.readouterr().out.strip() == shown
    section = readme_section("Your own operator, from the forward you wrote")
    (code,) = fenced(section, "python")
    assert "such as `gates.py`" in section
    (tmp_path / "gates.py").write_text(code, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    (commands,) = fenced(section, "bash")
    for line in commands.splitlines():
        assert main(shlex.split(line, comments=True)[1:] + ["-q"] * ("generate" in line)) == 0, line
    assert (tmp_path / "my_kernels" / "numpy" / "swiglu.py").is_file() and (tmp_path / "swiglu_model.py").is_file()


def test_no_model_file_when_the_kernels_fail(folder, monkeypatch, capsys):
    """The model file is written after the kernels, only when they are: a derivation over its budget
    (``--max-size``) leaves no kernel and no model file."""
    monkeypatch.chdir(folder)
    before = snapshot(folder)
    assert main(["generate", *FROM, "--out", "k", "--model-out", "m.py", "-q", "--max-size", "3"]) == 2
    assert "swiglu" in one_error(capsys)
    assert snapshot(folder) == before


def test_a_scalar_shape_makes_a_learnable_scalar_input(folder, monkeypatch, capsys):
    monkeypatch.chdir(folder)
    shapes = ["--shape", "x=n", "--shape", "gamma=n", "--shape", "beta=n"]
    assert main(["show", "--from", "papers.py:dynamic_tanh", *shapes, "--shape", "alpha=()", "--ascii"]) == 0
    shown = capsys.readouterr().out
    assert "inputs: x[n], gamma[n], beta[n], alpha" in shown and "with respect to alpha" in shown
    assert main(["show", "--from", "papers.py:dynamic_tanh", *shapes, "--ascii"]) == 0
    assert "parameters: alpha=0.5" in capsys.readouterr().out
