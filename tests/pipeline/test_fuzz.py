"""The differential fuzzer: random models derived, rendered and proved against the oracle.

40 seeded models run here (two chunks, so xdist can spread them; about 30 s of the suite's time),
and the models found failing once are rerun by name; ``derive fuzz --count N --seed S`` hunts with
more.
A failure prints the model file that reproduces it.
"""

from __future__ import annotations

import pytest

from derive.cli import main
from derive.model.files import load_model
from derive.pipeline import fuzz
from derive.pipeline import render as rendering
from derive.proof.kernel import ProofError

CHUNKS, PER_CHUNK = 2, 20


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_random_models_are_proved(chunk):
    report = fuzz.run(PER_CHUNK, seed=2026, start=chunk * PER_CHUNK, seconds=None,  # no wall-clock limit: load varies
                      deep=False)  # the deep ones: test_budget.py
    assert report.ran == PER_CHUNK
    shown = "\n\n".join(fuzz.failing_file(source, problem) for source, problem in report.failures[:2])
    assert not report.failures, f"{len(report.failures)} random models fail; the first:\n{shown}"
    assert report.refused <= PER_CHUNK // 4, "most random models must reach the proof, not be refused"


def test_models_are_reproducible_and_varied():
    assert fuzz.random_model("7:1", "m") == fuzz.random_model("7:1", "m")
    sources = [fuzz.random_model(f"7:{k}", "m") for k in range(60)]
    text = "\n".join(sources)
    for block in ("sp.Sum(", "sp.exp(", "sp.log(", "sp.sqrt(", "sigmoid(", "sp.tanh(", "**2", ")/(",
                  "optional=True", "where=((", "(m, n,)", "output_indices=()", "output_indices=(i,)"):
        assert block in text, f"no random model uses {block}"


def test_a_failing_model_is_printed_as_a_file_that_reruns(tmp_path, monkeypatch, capsys):
    def refuse(model, files, *args, **options):
        raise ProofError(f"proof failed for operator {model.name!r}: planted")

    monkeypatch.setattr(rendering, "prove_files", refuse)
    assert main(["fuzz", "--count", "2", "--seed", "3", "-q"]) == 1
    out = capsys.readouterr()
    assert "2 failing" in out.err
    first = out.out.split("# ---- failing model ----\n")[1]
    assert "planted" in first
    path = tmp_path / "fuzz_3_0.py"
    path.write_text(first, encoding="utf-8")
    assert load_model(path).name == "fuzz_3_0"


def test_a_model_that_takes_too_long_is_a_failure(tmp_path, monkeypatch):
    def hang(model, files, *args, **options):
        while True:
            pass

    monkeypatch.setattr(rendering, "prove_files", hang)
    problem = fuzz.check_source(fuzz.random_model("3:0", "slow"), tmp_path, "slow", seconds=1)
    assert problem == "too slow: not proved within 1 s"


REGRESSIONS = {
    "2026:189": "a guarded gradient whose last in-place step became the runtime's per-row ``scale`` was "
                "also returned as the unscaled expression times that factor, so the factor applied twice",
    "7:1": "the numba loops stored a costly value in a reduction pass run when ``a``'s tangent is given "
           "and read it in every term of the result pass, one computed when only ``g``'s is (the pass "
           "had not run): ``vjp_jvp`` along ``g`` read an unset scratch row (inf)",
    "11:119": "the Array API printer serves every function of a kernel and remembered ``t1`` as a Python "
              "number (``m**2`` in vjp), so jvp's ``t1``, an array, went through ``math.sqrt``: TypeError",
    "13:127": "CSE took ``n - 1`` out of the model's expression and out of the summation index's range "
              "with it, leaving ``Sum(dy[n_], (n_, 0, t0))``, which no printer lays on an axis (a crash)",
    "2026:35": "the numba loops computed every result's locals before the writes, each under its own flag: "
               "with only some of vjp_jvp's tangents given, a local read a scratch row no pass had set "
               "(inf * 0: a NaN thrown away, and work done for a gradient nobody asked for)",
    "2026:51": "the numba result pass computed its per-row values (staged out of the loops) for every "
               "result, wanted or not: with wrt=(), one read a scratch row its skipped pass never set "
               "(found once the proof called every wrt subset)",
    "2026:218": "the same in vjp_jvp, a divide this time: a per-row value only unwanted terms read",
    "2026:552": "a dead temporary reused as ``out=`` was a NumPy scalar, not an array, when the inputs it "
                "came from were 0-d (``np.log(t0, out=t0)``: TypeError with ``a`` 0-d, ``b`` (2, 3))",
}
"""Random models found failing once (seed: what was wrong); each is now written and proved (the
fuzzer proves with NumPy's warnings as errors: an invalid operation in a kernel fails)."""


@pytest.mark.parametrize("seed", REGRESSIONS)
def test_a_model_found_failing_once_is_proved(seed, tmp_path):
    name = f"fuzz_{seed.replace(':', '_')}"
    problem = fuzz.check_source(fuzz.random_model(seed, name), tmp_path, name)
    assert problem is None, f"{REGRESSIONS[seed]}; again: {problem}"
