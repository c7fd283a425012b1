"""Budgets: a runaway derivation stops with one clear error naming the model and the step, and
writes nothing; a LaTeX document alone over its budget is written abridged, the kernels whole.

Each CLI call runs in-process under ``hang_guard``, an alarm that fails the test if the budget does
not stop the run (the budget's own timer chains to it, as it does to pytest-timeout's).
"""

from __future__ import annotations

import json
import multiprocessing
import re
import shutil
import signal
import textwrap
import threading
import time

import pytest
from helpers import ROOT
from helpers.commands import one_error, snapshot

from derive.cli import main
from derive.pipeline import fuzz, generate
from derive.targets.latex import view

HANG = 90.0
"""Seconds after which a run the budget should have stopped fails its test (today's code: minutes)."""

MODEL = '''
import sympy as sp
from derive.model import Input, OperatorModel, index, size
from derive.registry import register


@register
def {name}() -> OperatorModel:
    n = size("n")
    i, j = index("i", n), index("j", n)
    x = Input("x", (n,))
    e = {start}
    for k in range(30):
        e = {grow}
    return OperatorModel(name="{name}", summary="s", category="c", inputs=(x,), output_indices=(i,), output=e)
'''
NESTED = {"name": "deep", "start": "x[i]",  # exp, log, sqrt in turn, each valid anywhere
          "grow": "(sp.exp, lambda t: sp.log(1 + t**2), lambda t: sp.sqrt(1 + t**2))[k % 3](e)"}
PRODUCT = {"name": "product", "start": "x[i]", "grow": "e*sp.Sum(x[j]**(k % 3 + 1) + k, (j, 0, n - 1))"}
SMALL = {"name": "small", "start": "x[i]*sp.tanh(x[i])", "grow": "e"}


class Hung(BaseException):
    pass


@pytest.fixture
def hang_guard():
    def hung(signum, frame):
        raise Hung(f"not stopped within {HANG:g} s: the budget did not hold")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, HANG)
    yield
    assert signal.getsignal(signal.SIGALRM) is hung, "the budget did not put the alarm handler back"
    assert signal.getitimer(signal.ITIMER_REAL)[0] > 0, "the budget did not put the alarm back"
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def model_file(tmp_path, parts: dict):
    path = tmp_path / f"{parts['name']}.py"
    path.write_text(textwrap.dedent(MODEL).format(**parts))
    return path


def previous_output(tmp_path):
    """An output folder holding a previous generation and a file of the user's."""
    out = tmp_path / "out"
    shutil.copytree(ROOT / "generated", out)
    (out / "notes.txt").write_text("mine")
    return out


def test_a_product_of_30_sums_stops_at_its_step_budget(tmp_path, capsys, hang_guard):
    out = previous_output(tmp_path)
    before = snapshot(out)
    code = main(["generate", "--model", str(model_file(tmp_path, PRODUCT)), "--out", str(out), "--no-cache", "-q",
                 "--step-timeout", "2"])
    err = one_error(capsys)
    assert code == 2
    # the step that runs over is the engine's to choose (differentiating by x, or rendering a target
    # since the differentiator got faster); the error names it, the model and the option
    assert re.search(r"operator 'product' \(product\.py\): (differentiating by x|rendering the \w+ target) "
                     r"exceeded the time budget of 2 s per step \(--step-timeout or DERIVE_STEP_TIMEOUT\); raise it",
                     err), err
    assert snapshot(out) == before, "nothing is written"


def test_30_nested_functions_stop_at_the_size_budget_the_environment_sets(tmp_path, capsys, hang_guard,
                                                                           monkeypatch):
    monkeypatch.setenv("DERIVE_MAX_SIZE", "2000")  # the derivative has 2,857 nodes; built-ins' largest 5,927
    out = previous_output(tmp_path)
    before = snapshot(out)
    code = main(["generate", "--model", str(model_file(tmp_path, NESTED)), "--out", str(out), "--no-cache", "-q"])
    err = one_error(capsys)
    assert code == 2
    assert "operator 'deep' (deep.py): differentiating by x made a derivative of 2,857 nodes, over the size " \
           "budget of 2,000 nodes (--max-size or DERIVE_MAX_SIZE)" in err
    assert snapshot(out) == before


def test_show_stops_at_the_overall_timeout(tmp_path, capsys, hang_guard):
    started = time.monotonic()
    code = main(["show", "--model", str(model_file(tmp_path, NESTED)), "--timeout", "3"])
    err = one_error(capsys)
    assert code == 2 and "operator 'deep' (deep.py): " in err
    assert "did not finish within the time budget of 3 s (--timeout or DERIVE_TIMEOUT)" in err
    assert time.monotonic() - started < 3 + 10


def test_a_budget_given_wrong_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DERIVE_STEP_TIMEOUT", "soon")
    assert main(["show", "relu"]) == 2
    assert "DERIVE_STEP_TIMEOUT=soon: give a positive number" in one_error(capsys)


def slow_second_order(*args):
    """The LaTeX document's second-order section, as a model's that runs away."""
    while True:
        time.sleep(0.05)


def assert_abridged(out, name: str) -> None:
    twin = json.loads((out / "latex" / f"{name}.json").read_text())
    assert "abridged" in twin
    kinds = [e["kind"] for e in twin["equations"]]
    assert {"vjp", "jvp"} <= set(kinds) and "step" not in kinds and "vjp_jvp" not in kinds
    body = (out / "latex" / f"{name}-body.tex").read_text()
    assert "The derivation step by step is left out of this document: the second order went over the time " \
           "budget of 2~s per step" in body
    for kernel in ("numpy", "numba", "array_api"):
        assert "def vjp_jvp(" in (out / kernel / f"{name}.py").read_text()


def test_a_document_alone_over_budget_is_abridged_and_the_kernels_written(tmp_path, capsys, monkeypatch, hang_guard):
    """A user's model is derived in this process: its LaTeX second order runs away, nothing else."""
    monkeypatch.setattr(view, "second_view", slow_second_order)
    out = tmp_path / "out"
    code = main(["generate", "--model", str(model_file(tmp_path, SMALL)), "--out", str(out), "--no-cache",
                 "--step-timeout", "2"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "small: rendering the latex target: the second order went over the time budget of 2 s per step; " \
           "its LaTeX document is abridged" in err
    assert_abridged(out, "small")  # and proved: generate proves the twin's equations before writing


def test_budgets_hold_in_the_worker_processes(tmp_path, capsys, monkeypatch, hang_guard):
    """Built-ins are derived in worker processes (forked here, so they run the slow section too): the
    workers' timers stop it, and their reports of a long step reach the parent's progress lines."""
    from derive import budget

    monkeypatch.setattr(view, "second_view", slow_second_order)
    monkeypatch.setattr(budget, "REPORT_AFTER", 0.5)
    monkeypatch.setattr(generate, "_pool_context", lambda: multiprocessing.get_context("fork"))
    out = tmp_path / "out"
    code = main(["generate", "relu", "exp", "--out", str(out), "--no-cache", "-j", "2", "--step-timeout", "2"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert re.search(r"^derive: relu: rendering the latex target: the second order \(\d+ s\)$", err, re.MULTILINE), err
    for name in ("relu", "exp"):
        assert_abridged(out, name)


def test_the_timer_nests_gives_way_and_puts_everything_back():
    from derive.budget import Budget, OverBudget, limits, step

    fired = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(time.monotonic()))
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    started = time.monotonic()
    try:
        with limits(Budget(step_seconds=0.6)), pytest.raises(OverBudget) as over, step("outer"):
            time.sleep(0.4)  # the outer alarm fires on time inside the step
            with step("inner"):  # its own 0.6 s: the outer step's time stops while it runs
                while True:
                    pass
        assert over.value.kind == "step" and over.value.step == "outer: inner"
        assert len(fired) == 1 and fired[0] - started < 0.35
        assert 1.0 <= time.monotonic() - started < 3.0
        with pytest.raises(KeyboardInterrupt), limits(Budget(step_seconds=5)), step("interrupted"):
            signal.raise_signal(signal.SIGINT)  # Ctrl-C still stops a step, and the timer is put back
        assert signal.getitimer(signal.ITIMER_REAL)[0] == 0
    finally:
        signal.signal(signal.SIGALRM, previous)


def test_off_the_main_thread_time_is_checked_between_steps():
    from derive.budget import Budget, OverBudget, limits, step

    errors = []

    def derive_in_a_thread():
        try:
            with limits(Budget(step_seconds=0.2)), step("a step in a thread"):
                time.sleep(0.4)
        except OverBudget as error:
            errors.append(str(error))

    worker = threading.Thread(target=derive_in_a_thread)
    worker.start()
    worker.join(10)
    assert len(errors) == 1 and errors[0].startswith("a step in a thread exceeded the time budget of 0.2 s per step")


@pytest.mark.parametrize("number", [4, 23])  # 2026:4 nests 27 functions, 2026:23 multiplies 30 sums
def test_deep_random_models_are_proved_or_stopped_within_their_budget(number, hang_guard):
    assert fuzz.is_deep(f"2026:{number}")
    source = fuzz.random_model(f"2026:{number}", "deep_model", deep=True)
    assert source.count("sp.Sum(a[") >= 5 or sum(source.count(f) for f in ("sp.exp(", "sp.log(", "sp.sqrt(")) >= 8
    started = time.monotonic()
    report = fuzz.run(1, seed=2026, start=number, deep_seconds=3)
    assert report.ran == 1 and not report.failures, report.failures  # a run past its budget is a failure
    assert time.monotonic() - started < 3 + fuzz.GRACE
