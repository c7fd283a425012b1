"""derive bench at tiny shapes, its hand-written baselines against finite differences, its targets."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from helpers import GENERATED, ROOT, finite_differences, reference

from derive.bench import adapter, baselines, cases, kernels, measure, report, torch_ref
from derive.cli import main

# -- the hand-written baselines, checked independently of the generated kernels -------------------

FORWARDS = {op: getattr(reference, op)
            for op in ("rmsnorm", "layernorm", "softmax", "log_softmax", "batchnorm", "matmul")}
BASELINES = [(op, kind, getattr(baselines, f"{kind}_{op}")) for op in FORWARDS
             for kind in ("closed", "plain", "naive") if hasattr(baselines, f"{kind}_{op}")]


@pytest.mark.parametrize("op,kind,baseline", BASELINES, ids=[f"{kind}_{op}" for op, kind, _ in BASELINES])
def test_baseline_matches_finite_differences(op, kind, baseline, rng):
    case = cases.handwritten(quick=True)[op][0]
    shapes = {name: tuple(min(s, 5) for s in shape) for name, shape in case.inputs.items()}
    if op in ("rmsnorm", "layernorm", "batchnorm"):  # gamma and beta follow x's feature axis
        feature = shapes["x"][1 if op == "batchnorm" else -1]
        shapes["gamma"] = shapes["beta"] = (feature,)
    if op == "matmul":
        shapes["b"] = (shapes["a"][1], 4)
    arrays = [rng.standard_normal(shape) for shape in shapes.values()]
    dy = rng.standard_normal(np.shape(FORWARDS[op](*arrays, **case.params)))
    expected = [finite_differences.vjp(FORWARDS[op], dy, arrays, p, case.params) for p in range(len(arrays))]
    copies = [a.copy() for a in (dy, *arrays)]
    got = baseline(*copies, **case.params)
    assert all(np.array_equal(a, b) for a, b in zip(copies, (dy, *arrays))), "a baseline changed its inputs"
    for name, want, have in zip(shapes, expected, got):
        np.testing.assert_allclose(have, want, rtol=1e-6, atol=1e-7, err_msg=f"{kind}_{op}: d{name}")


# -- the command ---------------------------------------------------------------------------------


def test_quick_bench_measures_every_candidate(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "rmsnorm", "matmul", "--quick", "--no-derivation", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    results = json.loads(out.read_text())
    assert [(k["op"], k["dtype"]) for k in results["kernels"]] == [
        (op, dtype) for op in ("rmsnorm", "matmul") for dtype in ("float32", "float64")]
    for result in results["kernels"]:
        rows = {row["name"]: row for row in result["rows"]}
        expected = {kernels.GENERATED_FORWARD, kernels.GENERATED_VJP, kernels.CLOSED_VJP, kernels.COPY,
                    kernels.GENERATED_VJP_JVP}
        if result["op"] != "matmul":
            expected |= {kernels.PLAIN_VJP, kernels.NAIVE_VJP}
        if torch_ref.torch_module() is not None:
            expected |= {kernels.TORCH_FORWARD, kernels.TORCH_VJP, kernels.TORCH_VJP_JVP}
            assert result["ratios"][f"{kernels.GENERATED_VJP_JVP} / {kernels.TORCH_VJP_JVP}"] > 0
        expected |= {kernels.NUMBA_FORWARD, kernels.NUMBA_VJP}  # numba is in the test extra
        if torch_ref.torch_module() is not None and result["op"] in adapter.OPS:
            expected |= {adapter.ADAPTER_FORWARD, adapter.ADAPTER_VJP}
            assert result["ratios"][f"{adapter.ADAPTER_VJP} / {kernels.TORCH_VJP}"] > 0
        assert set(rows) == expected
        first = result["numba_first_call_s"]
        assert first["forward"] > 0 and first["vjp"] > 0 and first["new_process"] > 0
        assert all(row["disagrees"] is None for row in rows.values())
        assert all(row["ms"] > 0 and len(row["ms_all"]) == 3 for row in rows.values())
        assert rows[kernels.COPY]["copy_pct"] == pytest.approx(100)
        assert rows[kernels.GENERATED_VJP]["peak_ratio"] > 0 and rows[kernels.COPY]["peak_ratio"] is None
        assert result["ratios"][f"generated / {kernels.CLOSED_VJP}"] > 0
        assert result["ratios"][f"numba / {kernels.CLOSED_VJP}"] > 0
    assert "| rmsnorm | 6×40 | float32 |" in printed and "targets:" in printed
    assert "| numba vjp ms |" in printed and "numba first call" in printed
    assert "| generated vjp_jvp ms | torch double backward ms |" in printed


def test_a_wrong_second_order_is_reported_and_not_ranked(monkeypatch):
    """The generated vjp_jvp and PyTorch's double backward are compared before either is timed."""
    case = cases.handwritten(quick=True)["layernorm"][0]
    real = torch_ref.double_backward
    monkeypatch.setattr(torch_ref, "double_backward",
                        lambda *a: (lambda f: lambda: tuple(None if g is None else 2 * g for g in f()))(real(*a)))
    result = kernels.run_case(case, np.dtype("float64"), GENERATED, 1, 1, np.random.default_rng(0), numba=False)
    rows = {r["name"]: r for r in result["rows"]}
    assert rows[kernels.TORCH_VJP_JVP]["disagrees"].startswith("gradient 0 differs")
    assert rows[kernels.GENERATED_VJP_JVP]["disagrees"] is None
    assert f"{kernels.GENERATED_VJP_JVP} / {kernels.TORCH_VJP_JVP}" not in result["ratios"]


def test_rmsnorm_vjp_moves_three_arrays(tmp_path):
    case = cases.handwritten(quick=True)["rmsnorm"][0]
    result = kernels.run_case(case, np.dtype("float32"), GENERATED, 1, 1, np.random.default_rng(0), numba=False)
    vjp = next(r for r in result["rows"] if r["name"] == kernels.GENERATED_VJP)
    rows, n = case.inputs["x"]
    # read x, dy, gamma, beta; write dx, dgamma, dbeta
    assert vjp["bytes"] == 4 * (3 * rows * n + 4 * n)


def test_bench_without_torch_leaves_torch_out(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch_ref, "torch_module", lambda: None)
    out = tmp_path / "bench.json"
    assert main(["bench", "layernorm", "--quick", "--no-derivation", "--no-numba", "--dtype", "float64",
                 "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    names = {row["name"] for k in results["kernels"] for row in k["rows"]}
    assert kernels.TORCH_VJP not in names and kernels.CLOSED_VJP in names
    assert results["machine"]["torch"] is None
    assert kernels.NUMBA_VJP not in names and results["settings"]["numba"] is False  # --no-numba
    assert all(k["numba_first_call_s"] is None for k in results["kernels"])


def test_operator_without_generated_kernel_is_skipped_with_a_note(tmp_path, capsys):
    folder = tmp_path / "generated"
    (folder / "numpy").mkdir(parents=True)
    shutil.copy(GENERATED / "numpy" / "rmsnorm.py", folder / "numpy" / "rmsnorm.py")
    out = tmp_path / "bench.json"
    assert main(["bench", "rmsnorm", "softmax", "log_softmax", "--quick", "--no-derivation",
                 "--dtype", "float32", "--generated", str(folder), "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert [k["op"] for k in results["kernels"]] == ["rmsnorm"]
    if torch_ref.torch_module() is not None:  # no array_api/rmsnorm.py there: no adapter rows, a note
        assert any(n.startswith("torch adapter left out: no generated kernel") for n in results["kernels"][0]["notes"])
        assert adapter.ADAPTER_VJP not in {r["name"] for r in results["kernels"][0]["rows"]}
    assert any(note.startswith("softmax: skipped (no generated kernel") for note in results["notes"])
    assert any(note.startswith("log_softmax: skipped") for note in results["notes"])
    assert "softmax: skipped" in capsys.readouterr().out


def test_a_kernel_with_other_inputs_is_skipped(tmp_path):
    case = cases.Case("rmsnorm", {"x": (4, 8)}, {"eps": 1e-6})
    with pytest.raises(kernels.Skip, match="takes inputs"):
        kernels.run_case(case, np.dtype("float32"), GENERATED, 1, 1, np.random.default_rng(0), numba=False)


def test_generic_case_for_an_operator_without_baselines():
    case = cases.generic("layernorm", quick=True)
    assert case.inputs == {"x": (4, 5), "gamma": (5,), "beta": (5,)} and case.params == {"eps": 1e-5}
    result = kernels.run_case(case, np.dtype("float64"), GENERATED, 1, 1, np.random.default_rng(0), numba=False)
    assert kernels.CLOSED_VJP not in {r["name"] for r in result["rows"]}
    assert cases.generic("matmul", quick=False).inputs == {"a": (16, 256, 256), "b": (16, 256, 256)}


def test_a_disagreeing_baseline_is_reported_and_not_ranked(monkeypatch):
    case = cases.handwritten(quick=True)["softmax"][0]
    wrong = cases.Case(case.op, case.inputs, case.params, cases.Baselines(closed=lambda dy, x, **p: (dy,)))
    result = kernels.run_case(wrong, np.dtype("float64"), GENERATED, 1, 1, np.random.default_rng(0), numba=False)
    closed = next(r for r in result["rows"] if r["name"] == kernels.CLOSED_VJP)
    assert closed["disagrees"] and f"generated / {kernels.CLOSED_VJP}" not in result["ratios"]


def test_unknown_operator_is_a_clear_error(capsys):
    assert main(["bench", "rmsnrom", "--quick"]) == 2
    assert "unknown operator 'rmsnrom'" in capsys.readouterr().err


def test_derivation_timing(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "relu", "--quick", "--no-kernels", "--json", str(out)]) == 0
    timing = json.loads(out.read_text())["derivation"]
    assert timing["operators"] == 1
    assert 0 < timing["unchanged_s"] and 0 < timing["scratch_s"] and 0 < timing["serial_no_cache_s"]


# -- targets and the plot ------------------------------------------------------------------------


def fake_result(op: str, dtype: str, mine: float, closed: float, torch: float, peak: float, size: int) -> dict:
    rows = [{"name": name, "kind": "vjp", "ms": ms, "disagrees": None, "peak_ratio": ratio, "gbs": 1.0,
             "copy_pct": 10.0}
            for name, ms, ratio in ((kernels.GENERATED_VJP, mine, peak), (kernels.CLOSED_VJP, closed, 2.0),
                                    (kernels.TORCH_VJP, torch, None))]
    return {"op": op, "shape": [8, 8], "dtype": dtype, "input_bytes": size, "rows": rows, "copy_gbs": 10.0}


def test_targets_are_decided_from_the_measurements():
    large = 64 << 20
    results = [fake_result("rmsnorm", "float32", 1.10, 1.0, 2.0, 3.0, large),
               fake_result("layernorm", "float32", 1.20, 1.0, 1.1, 4.5, large),
               fake_result("layernorm", "float64", 9.0, 1.0, 1.0, 1.0, large),   # only float32 is timed
               fake_result("softmax", "float32", 9.0, 1.0, 9.0, 9.0, 1024),     # too small for targets
               fake_result("matmul", "float32", 9.0, 1.0, 1.0, 50.0, large)]    # exempt from memory
    second = fake_result("softmax", "float32", 1.0, 1.0, 1.0, 1.0, large)
    second["shape"] = [4096, 1024]
    second["rows"] += [{"name": kernels.GENERATED_VJP_JVP, "kind": "vjp_jvp", "ms": 3.0, "disagrees": None},
                       {"name": kernels.TORCH_VJP_JVP, "kind": "vjp_jvp", "ms": 2.0, "disagrees": None}]
    results.append(second)
    found = report.targets(results, {"operators": 4, "scratch_s": 61.0, "unchanged_s": 0.5},
                           {"rmsnorm": "normalization", "layernorm": "normalization", "softmax": "normalization",
                            "matmul": "linear algebra"})
    verdicts = {t["target"]: t["met"] for t in found}
    assert verdicts == {
        "rmsnorm (8, 8) float32: generated vjp / closed form": True,
        "rmsnorm (8, 8) float32: generated vjp / torch autograd": True,
        "rmsnorm (8, 8) float32: generated vjp peak memory / input": True,
        "layernorm (8, 8) float32: generated vjp / closed form": False,
        "layernorm (8, 8) float32: generated vjp / torch autograd": False,
        "layernorm (8, 8) float32: generated vjp peak memory / input": False,
        "layernorm (8, 8) float64: generated vjp peak memory / input": True,
        "softmax (4096, 1024) float32: generated vjp / closed form": True,
        "softmax (4096, 1024) float32: generated vjp / torch autograd": False,
        "softmax (4096, 1024) float32: generated vjp peak memory / input": True,
        "softmax (4096, 1024) float32: generated vjp_jvp / torch double backward": False,
        "derive generate, 4 operators, from scratch (s)": False,
        "derive generate, 4 operators, unchanged (s)": True,
    }
    assert "MISSED layernorm (8, 8) float32: generated vjp / closed form: 1.20" in report.targets_text(found)


def test_numba_targets_are_decided_from_the_measurements():
    """Issue 13: numba vjp and forward >= 60% of the copy floor, >= 1.5x PyTorch, cached first call < 1 s."""
    result = fake_result("layernorm", "float32", 1.0, 1.0, 3.0, 2.0, 64 << 20)
    result["rows"] += [{"name": kernels.NUMBA_VJP, "kind": "vjp", "ms": 2.5, "disagrees": None, "peak_ratio": 1.0,
                        "gbs": 1.0, "copy_pct": 65.0},
                       {"name": kernels.NUMBA_FORWARD, "kind": "forward", "ms": 1.0, "disagrees": None,
                        "peak_ratio": 1.0, "gbs": 1.0, "copy_pct": 40.0}]
    result["numba_first_call_s"] = {"forward": 5.0, "vjp": 6.0, "new_process": 0.4, "cache_before": False}
    verdicts = {t["target"]: (t["met"], round(t["measured"], 2)) for t in report.numba_targets(result)}
    assert verdicts == {
        "layernorm (8, 8) float32: numba vjp % of copy floor": (True, 65.0),
        "layernorm (8, 8) float32: numba forward % of copy floor": (False, 40.0),
        "layernorm (8, 8) float32: torch autograd / numba vjp": (False, 1.2),
        "layernorm (8, 8) float32: numba first call in a new process (s)": (True, 0.4),
    }
    table = report.numba_table([result])
    assert "| layernorm | 8×8 | float32 | 2.5 | 65% | 3 | 1.20× | 1 | 40% | 11.00 | 0.40 |" in table


def test_plot_command_writes_a_png(tmp_path):
    results = {"kernels": [fake_result("rmsnorm", "float32", 1.1, 1.0, 2.0, 3.0, 1 << 20),
                           fake_result("rmsnorm", "float64", 1.1, 1.0, 2.0, 3.0, 1 << 20)]}
    source, target = tmp_path / "bench.json", tmp_path / "docs" / "bench.png"
    source.write_text(json.dumps(results))
    done = subprocess.run([sys.executable, "-m", "derive.bench.plot", str(source), str(target)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_torch_reference_that_fails_is_left_out_with_a_note(monkeypatch):
    def broken(op, arrays, params, dy):
        raise TypeError("unexpected keyword argument 'eps'")

    monkeypatch.setattr(torch_ref, "autograd", broken)
    case = cases.handwritten(quick=True)["rmsnorm"][0]
    result = kernels.run_case(case, np.dtype("float64"), GENERATED, 1, 1, np.random.default_rng(0), numba=False)
    assert kernels.TORCH_VJP not in {r["name"] for r in result["rows"]}
    assert result["notes"] == ["torch autograd left out: TypeError: unexpected keyword argument 'eps'"]


def test_after_a_pause_each_timed_call_follows_an_untimed_one():
    """A rested machine's first call wakes its threads: with a pause the candidate is called once
    before its timed call, in every round; without one, rounds are back to back."""
    calls = []
    candidates = {name: (lambda name=name: calls.append(name)) for name in ("a", "b")}
    times = measure.interleaved_times(candidates, repeats=2, warmup=1, pause=0.001)
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 2 and all(len(t) == 2 for t in times.values())
    calls.clear()
    measure.interleaved_times(candidates, repeats=2, warmup=1)
    assert calls == ["a", "b"] + ["a", "b"] * 2
