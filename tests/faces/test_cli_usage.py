"""The command line as a new user meets it: a misspelled option gets its command's usage and the
closest option, a path that cannot be written fails before any work, and derive bench measures the
kernels derive ships from any working folder (and fails when it finds none to measure)."""

from __future__ import annotations

import json

import pytest

from derive import api
from derive.bench import torch_ref
from derive.cli import main
from derive.pipeline import generate


@pytest.mark.parametrize("argv,given,meant", [
    (["show", "layernorm", "--ordr", "2"], "--ordr", "--order"),
    (["generate", "relu", "--no-cahce"], "--no-cahce", "--no-cache"),
    (["check", "relu", "--out=x", "--quite"], "--quite", "--quiet"),
    (["pdf", "relu", "--sorce", "x"], "--sorce", "--source"),
    (["claim", "relu", "--wrt", "x", "--vjp", "dy[k]", "--diagonl"], "--diagonl", "--diagonal"),
    (["bench", "--quik"], "--quik", "--quick"),
])
def test_a_misspelled_option_gets_its_commands_usage_and_the_closest_option(argv, given, meant, capsys):
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: derive {argv[0]} ")
    assert err.endswith(f"derive {argv[0]}: error: unrecognized argument {given}; did you mean {meant}?\n")


def test_an_argument_no_command_takes_gets_that_commands_usage(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["show", "relu", "extra"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: derive show ") and err.endswith("unrecognized arguments: extra\n")


@pytest.mark.parametrize("argv", [["generate", "relu"], ["generate", "relu", "--no-cache"]])
def test_out_under_a_file_fails_before_deriving(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(generate, "plan", lambda *args, **kwargs: pytest.fail("derived before checking --out"))
    (tmp_path / "afile.txt").write_text("mine\n")
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--out", "afile.txt/sub"]) == 2
    err = capsys.readouterr().err
    assert err == "derive: error: cannot write into afile.txt/sub: afile.txt is a file, not a folder\n"
    assert (tmp_path / "afile.txt").read_text() == "mine\n"


QUICK = ["--quick", "--no-derivation", "--no-numba", "--dtype", "float64"]


def test_bench_from_any_folder_measures_the_kernels_derive_ships(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no generated/ here
    monkeypatch.setattr(torch_ref, "torch_module", lambda: None)  # the kernels are what is tested
    assert main(["bench", "relu", *QUICK, "--json", "bench.json"]) == 0
    results = json.loads((tmp_path / "bench.json").read_text())
    assert [k["op"] for k in results["kernels"]] == ["relu"] and results["notes"] == []
    assert results["settings"]["generated"] == str(api.generated_folder())


def test_bench_with_no_kernel_to_measure_fails(tmp_path, capsys):
    (tmp_path / "numpy").mkdir()
    assert main(["bench", "relu", "softmax", *QUICK, "--generated", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert err == (f"derive: error: no kernel to measure: {tmp_path / 'numpy'} holds none of relu, softmax; "
                   "give --generated the folder `derive generate --out` wrote\n")
    assert out == ""  # nothing measured first


def test_bench_report_under_a_missing_folder_fails_before_measuring(tmp_path, monkeypatch, capsys):
    from derive.bench import run

    monkeypatch.setattr(run, "measure_kernels", lambda *args: pytest.fail("measured before checking --json"))
    assert main(["bench", "relu", *QUICK, "--json", str(tmp_path / "missing" / "bench.json")]) == 2
    assert capsys.readouterr().err == (f"derive: error: cannot write {tmp_path / 'missing' / 'bench.json'}: "
                                       f"{tmp_path / 'missing'} is not a folder\n")
