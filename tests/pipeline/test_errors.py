"""Every kind of bad input gets one clear message, exit status 2 and no written file; generation is atomic."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sympy as sp
from helpers import GENERATED, OPERATORS, ROOT
from helpers.commands import Watched, one_error, snapshot

import derive
from derive.cli import main
from derive.pipeline import generate, output
from derive.targets import base

HEADER = """
import sympy as sp
from derive.model import Input, OperatorModel, index, size
from derive.registry import register


@register
def bad_op() -> OperatorModel:
    n, m = size("n"), size("m")
    i, j = index("i", n), index("j", n)
    x, w = Input("x", (n,)), Input("w", (m,))
    l = index("l", m)
"""


def model_file(folder: Path, output: str, extra: str = "") -> Path:
    """A model file whose output entry is ``output`` (inputs x[n], w[m]; indices i, j over n, l over m)."""
    path = folder / "bad_op.py"
    body = textwrap.indent(textwrap.dedent(extra), "    ") if extra else ""
    path.write_text(HEADER + body + f"""    return OperatorModel(name="bad_op", summary="s", category="c",
                         inputs=(x, w),
                         output_indices=(i,), output={output})
""")
    return path


@pytest.fixture
def previous_output(tmp_path) -> Path:
    """An output folder holding a previous generation (so "nothing written" is checkable)."""
    out = tmp_path / "out"
    shutil.copytree(GENERATED, out)
    return out


# -- an unknown operator ------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["show"], ["generate", "--out", "OUT"], ["check", "--out", "OUT"],
                                     ["claim", "--wrt", "x", "--vjp", "dy[k]"]])
def test_unknown_operator_names_the_closest_ones(command, capsys, previous_output):
    before = snapshot(previous_output)
    args = [str(previous_output) if a == "OUT" else a for a in command]
    assert main([args[0], "layernrom", *args[1:]]) == 2
    err = one_error(capsys)
    assert "unknown operator 'layernrom'. Did you mean layernorm?" in err and "Known operators: " in err
    assert snapshot(previous_output) == before


# -- malformed models ---------------------------------------------------------------------------------

def check_model_error(tmp_path, capsys, path: Path, *parts: str) -> None:
    out = tmp_path / "out"
    for command in (["show"], ["generate", "--out", str(out)], ["claim", "--wrt", "x", "--vjp", "0"]):
        assert main([command[0], "--model", str(path), *command[1:]]) == 2
        err = one_error(capsys)
        for part in parts:
            assert part in err, err
    assert not out.exists()


def test_index_bound_by_no_sum_and_no_output_position(tmp_path, capsys):
    path = model_file(tmp_path, "x[i] * x[j]")
    check_model_error(tmp_path, capsys, path, "operator 'bad_op' (bad_op.py)", "the output uses index j",
                      "which no sum binds and which is not an output position (output indices: i)")


def test_index_over_another_size_than_the_axis(tmp_path, capsys):
    path = model_file(tmp_path, "x[i] * sp.Sum(w[l] * x[l], (l, 0, m - 1))")
    check_model_error(tmp_path, capsys, path, "operator 'bad_op' (bad_op.py)",
                      "in x[l], the index l runs over 0..m - 1, outside axis 0 of x, which runs over 0..n - 1")


def test_shifted_index_that_leaves_the_axis(tmp_path, capsys):
    path = model_file(tmp_path, "x[i + 1] - x[i]")
    check_model_error(tmp_path, capsys, path, "in x[i + 1], the index i + 1 runs over 1..n, outside axis 0 of x")


def test_sum_whose_limits_leave_the_axis(tmp_path, capsys):
    """SymPy refuses this one itself, inside the factory: the message points at the file's line."""
    path = model_file(tmp_path, "x[i] * sp.Sum(x[j], (j, 0, n))")
    check_model_error(tmp_path, capsys, path,
                      "bad_op.py:15: bad_op() failed: ValueError: Summation will set Idx value too high")


def test_wrong_number_of_indices_and_unknown_symbols(tmp_path, capsys):
    path = model_file(tmp_path, "x[i] * w.base")
    check_model_error(tmp_path, capsys, path, "w is used without indices")
    path = model_file(tmp_path, "x[i] * alpha", extra='alpha = sp.Symbol("alpha")\n')
    check_model_error(tmp_path, capsys, path, "the output uses alpha, which is neither an input, a size",
                      "declare it as a Param(name, default, symbol)")


def test_a_differentiable_input_without_axes_is_a_scalar(tmp_path):
    """Once refused ("has no axes"); now a learnable scalar, written s[()] or bare (s.base)."""
    for written in ("x[i] * s.base", "x[i] * s[()]"):
        path = model_file(tmp_path, written, extra='s = Input("s", ())\n')
        path.write_text(path.read_text().replace("inputs=(x, w)", "inputs=(x, w, s)"))
        gradient = derive.vjp(derive.load(path), "s")
        assert gradient.has(sp.IndexedBase("x")) and not gradient.has(sp.IndexedBase("s")), gradient


def test_piecewise_model_is_derived_and_claims_about_it_are_checked(tmp_path, capsys):
    """A branch condition is held fixed while differentiating (this was an internal error once)."""
    path = model_file(tmp_path, "sp.Piecewise((x[i], x[i] > 0), (0, True))")
    assert main(["claim", "--model", str(path), "--wrt", "x", "--vjp", "Piecewise((dy[k], x[k] > 0), (0, True))"]) == 0
    assert main(["claim", "--model", str(path), "--wrt", "x", "--vjp", "Piecewise((dy[k], x[k] < 0), (0, True))"]) == 1


def test_function_with_no_known_derivative_is_named(tmp_path, capsys):
    path = model_file(tmp_path, "sp.Function('mystery')(x[i])")
    check_model_error(tmp_path, capsys, path, "operator 'bad_op' (bad_op.py), derivative by x",
                      "no derivative known for function mystery in mystery(x[i])", "fdiff")


def test_declared_function_without_numpy_form_is_named(tmp_path, capsys):
    extra = """
    class softish(sp.Function):
        def fdiff(self, argindex=1):
            return 1 / (1 + sp.exp(-self.args[0]))
    """
    path = model_file(tmp_path, "softish(x[i])", extra=extra)
    out = tmp_path / "out"
    assert main(["generate", "--model", str(path), "--out", str(out)]) == 2
    err = one_error(capsys)
    assert "operator 'bad_op' (bad_op.py)" in err and "softish" in err and "_numpycode" in err
    assert not out.exists()
    assert main(["claim", "--model", str(path), "--wrt", "x", "--vjp", "dy[k]*sigmoid(x[k])"]) == 0


# -- formulas that cannot be read -----------------------------------------------------------------------

@pytest.mark.parametrize("options,message", [
    (["--vjp", "dy[k] * (x[k]"], "cannot parse the vjp formula 'dy[k] * (x[k]': unbalanced brackets"),
    (["--vjp", "dy[k] +* x[k]"], "cannot parse the vjp formula"),
    (["--vjp", "dy[k] * RMS(x)"], "unknown function RMS"),
    (["--vjp", "dy[k] * zeta"], "unknown name zeta; the names of rmsnorm are"),
    (["--vjp", "dy[j] * x[k]"], "index j is neither summed over nor a free index here (free: k)"),
    (["--vjp", "dy[k] * x[k + 1]"], "in x[k + 1], the index k + 1 runs over 1..n, outside axis 0 of x"),
    (["--vjp", "dy[k] * x"], "x is used without indices"),
    (["--vjp", "dy[k, k]"], "dy[k, k] has 2 indices but dy has 1 axis (n)"),
    (["--vjp", "sum(dy[k], j)"], "in sum over j, j indexes no array; write Sum(f, (j, 0, n - 1))"),
    (["--vjp", "sum(dy)"], "sum(f, j) needs the index it sums over"),
    (["--vjp", "dy[k] if x[k] else 0"], "Python's IfExp is not part of a formula"),
    (["--vjp", "dy[k] and x[k]"], "write Piecewise((a, condition), (b, True))"),
    (["--vjp", "x[k].func"], "Python's Attribute is not part of a formula"),
    (["--vjp", "dy[k] > 0"], "is not an expression"),
    (["--vjp", "dy[k]", "--fix", "delta=1"], "--fix delta=1: rmsnorm has no input or parameter 'delta'"),
    (["--vjp", "dy[k]", "--fix", "gamma=two"], "--fix gamma=two: the value must be a number"),
    (["--vjp", "dy[k]", "--fix", "gamma"], "--fix gamma: write NAME=VALUE"),
    (["--vjp", "dy[k]", "--diagonal"], "--diagonal applies to a --jacobian claim"),
    (["--vjp", "dy[k]", "--sizes", "0,2"], "--sizes 0,2: give positive integers"),
])
def test_a_formula_or_option_that_cannot_be_read_is_exit_2(options, message, capsys):
    assert main(["claim", "rmsnorm", "--wrt", "x", *options]) == 2
    assert message in one_error(capsys)


def test_claim_on_an_input_that_is_not_differentiable(tmp_path, capsys):
    path = tmp_path / "loss.py"
    header = HEADER.replace("bad_op", "loss").replace('Input("w", (m,))', 'Input("w", (m,), differentiable=False)')
    path.write_text(header
                    + '    return OperatorModel(name="loss", summary="s", category="c", inputs=(x, w),\n'
                      '                         output_indices=(), output=sp.Sum(x[j] ** 2, (j, 0, n - 1)))\n')
    assert main(["claim", "--model", str(path), "--wrt", "w", "--vjp", "0"]) == 2
    assert "loss has no differentiable input 'w' (differentiable: x)" in one_error(capsys)


# -- templates that fail ----------------------------------------------------------------------------------

def broken_templates(tmp_path: Path, monkeypatch, file: str, line: int, text: str) -> None:
    """A copy of templates/ with ``text`` inserted as line ``line`` of ``file``, in use by the renderer."""
    copy = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", copy)
    lines = (copy / file).read_text().splitlines(keepends=True)
    lines.insert(line - 1, text + "\n")
    (copy / file).write_text("".join(lines))
    monkeypatch.setattr(base, "template_folder", lambda: copy)


@pytest.mark.parametrize("file,text,kind", [
    ("numpy/kernel.py.jinja", "{{ k.no_such_field }}", "UndefinedError"),
    ("numpy/kernel.py.jinja", "{% if %}", "TemplateSyntaxError"),
    ("kernel/numpy_runtime.py.jinja", "{{ k.name | no_such_filter }}", "TemplateAssertionError"),
    ("numpy/kernel.py.jinja", "{{ k.inputs.index('no such input') }}", "ValueError"),
])
def test_template_that_fails_names_file_line_and_operator_and_writes_nothing(
        file, text, kind, tmp_path, monkeypatch, capsys, previous_output):
    broken_templates(tmp_path, monkeypatch, file, 3, text)
    before = snapshot(previous_output)
    assert main(["generate", "--out", str(previous_output), "-q", "--no-cache", "--jobs", "1"]) == 2
    err = one_error(capsys)
    assert f"template templates/{file}, line 3 failed for operator '" in err and kind in err, err
    assert snapshot(previous_output) == before


# -- atomic generation ----------------------------------------------------------------------------------

SLOW_GENERATE = """
import sys, time
from pathlib import Path
import derive.pipeline.output as output
import derive.pipeline.render as rendering
real_render, real_fchmod = rendering.render, output.os.fchmod

def slow_render(derivation, *args, **kwargs):
    time.sleep(0.4)
    return real_render(derivation, *args, **kwargs)

def slow_stage(handle, mode):  # called once per staged temporary file, after its text is written
    real_fchmod(handle, mode)
    print("staged a file", file=sys.stderr, flush=True)
    time.sleep(0.4)

rendering.render = slow_render
output.os.fchmod = slow_stage
from derive.cli import main
if __name__ == "__main__":  # a worker started by a fork server or spawn imports this file again
    sys.exit(main(sys.argv[1:]))
"""


SOME = list(OPERATORS[:3])
"""The operators these tests generate (a few keep them quick; any would do)."""


def altered_copy(tmp_path: Path) -> Path:
    """A copy of generated/ in which the kernels of ``SOME`` were edited (so generation changes them)."""
    out = tmp_path / "gen"
    shutil.copytree(GENERATED, out)
    for name in SOME:
        kernel = out / "numpy" / f"{name}.py"
        kernel.write_text(kernel.read_text() + "# an edit that generation would undo\n")
    return out


def generate_and_kill(out: Path, tmp_path: Path, signal_number: int, after: str) -> int:
    """Start `derive generate` (slowed down) and send ``signal_number`` once stderr shows ``after``."""
    script = tmp_path / "slow_generate.py"
    script.write_text(SLOW_GENERATE)
    process = subprocess.Popen([sys.executable, str(script), "generate", *SOME, "--out", str(out)], cwd=tmp_path,
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                               env=dict(os.environ, PYTHONPATH=str(ROOT)))
    watched = Watched(process)
    try:
        watched.wait_for(after, timeout=300)
        process.send_signal(signal_number)
        return watched.finish(timeout=60)[0]
    finally:
        if process.poll() is None:
            process.kill()


def without_leftovers(files: dict[str, bytes]) -> dict[str, bytes]:
    return {path: text for path, text in files.items() if ".derive-tmp-" not in path}


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
@pytest.mark.parametrize("after", ["derive: [1/", "staged "], ids=["while-rendering", "while-staging"])
def test_generation_killed_part_way_leaves_the_folder_as_it_was(signal_number, after, tmp_path):
    out = altered_copy(tmp_path)
    before = snapshot(out)
    status = generate_and_kill(out, tmp_path, signal_number, after)
    assert status != 0, "the generation finished before it was interrupted"
    if signal_number == signal.SIGINT:
        assert snapshot(out) == before  # Ctrl-C removes its temporary files
    else:
        assert without_leftovers(snapshot(out)) == before  # SIGKILL leaves only temporary files
    assert main(["generate", *SOME, "--out", str(out), "-q"]) == 0  # and it would have changed it
    assert snapshot(out) != before and main(["check", *SOME, "--out", str(out), "-q"]) == 0
    assert without_leftovers(snapshot(out)) == snapshot(out)  # the next run removed them


def test_a_folder_an_older_derive_moved_aside_is_recovered(tmp_path, capsys):
    out = altered_copy(tmp_path)
    before = snapshot(out)
    os.replace(out, tmp_path / ".gen.old")  # as if derive 0.1 was killed between its two renames
    assert main(["check", *SOME, "--out", str(out), "-q"]) == 2
    assert "no generated output here" in one_error(capsys)
    assert main(["generate", *SOME, "--out", str(out), "-q"]) == 0
    assert not (tmp_path / ".gen.old").exists()
    assert set(snapshot(out)) == set(before) and main(["check", *SOME, "--out", str(out), "-q"]) == 0


def test_ctrl_c_while_renaming_is_held_until_every_file_is_in_place(tmp_path, monkeypatch, capsys):
    out = altered_copy(tmp_path)
    real_replace = output.os.replace

    def replace_then_interrupt(source, target):
        real_replace(source, target)
        signal.raise_signal(signal.SIGINT)  # Ctrl-C after the first rename

    monkeypatch.setattr(output.os, "replace", replace_then_interrupt)
    assert main(["generate", *SOME, "--out", str(out)]) == 130
    assert "had been written in full first" in capsys.readouterr().err
    monkeypatch.setattr(output.os, "replace", real_replace)
    assert main(["check", *SOME, "--out", str(out), "-q"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen"]
    assert without_leftovers(snapshot(out)) == snapshot(out)


def test_ctrl_c_while_rendering_says_nothing_was_written(tmp_path, monkeypatch, capsys):
    out = altered_copy(tmp_path)
    before = snapshot(out)

    def interrupted(model, **options):
        raise KeyboardInterrupt

    monkeypatch.setattr(generate, "render_model", interrupted)
    assert main(["generate", "--model", str(model_file(tmp_path, "x[i]")), "--out", str(out), "--no-cache"]) == 130
    assert f"interrupted; nothing was written to {out}/, which is as it was" in capsys.readouterr().err
    assert snapshot(out) == before


# -- layouts: inferred where only one fits, a wrong one named with the right one -----------------------

LAYOUT_MODEL = """
import sympy as sp
from derive.model import Input, Layout, OperatorModel, Param, index, size
from derive.registry import register


@register
def op() -> OperatorModel:
    n = size("n")
    i, j = index("i", n), index("j", n)
    a, b = Input("a", (n,)), Input("b", (n,))
    return OperatorModel(name="op", summary="s", category="c", inputs=(a, b), output_indices=(i,),
                         output={output}{extra})
"""


def layout_model(tmp_path: Path, output: str, extra: str = "") -> Path:
    path = tmp_path / "layout_op.py"
    path.write_text(LAYOUT_MODEL.format(output=output, extra=extra))
    return path


@pytest.mark.parametrize("output,extra,expected", [
    ("a[i] * sp.exp(b[i])", "", ("elementwise", None, None)),
    ("a[i] * sp.Sum(b[j], (j, 0, n - 1))", "", ("last", None, None)),
    ("a[i] * b[i] / sp.Sum(b[j], (j, 0, n - 1))", ", params=(Param('axis', -1),)", ("axis", "axis", None)),
    ("a[i] * b[i] / sp.Sum(b[j], (j, 0, n - 1))", ", params=(Param('axis', -1), Param('keepdims', False))",
     ("axis", "axis", "keepdims")),
    ("a[i] * b[i]", ", layout=Layout('last')", ("last", None, None)),  # a declared layout that fits is kept
])
def test_a_layout_is_inferred_where_only_one_fits(output, extra, expected, tmp_path):
    from derive import api

    layout = api.load(layout_model(tmp_path, output, extra)).layout
    assert (layout.kind, layout.param, layout.keepdims) == expected


def test_an_inferred_elementwise_kernel_broadcasts(tmp_path):
    import numpy as np

    from derive import api

    out = tmp_path / "out"
    assert main(["generate", "--model", str(layout_model(tmp_path, "a[i] * sp.exp(b[i])")), "--out", str(out),
                 "-q"]) == 0
    kernel = api.load_kernel(out / "numpy" / "op.py")
    a, b = np.arange(3.0).reshape(3, 1), np.linspace(0, 1, 4).reshape(1, 4)
    assert np.allclose(kernel.forward(a, b), a * np.exp(b))


@pytest.mark.parametrize("output,layout,right", [
    ("a[i] * sp.Sum(b[j], (j, 0, n - 1))", "Layout('elementwise')", "use Layout('last')"),
    ("a[i] * b[i] / sp.Sum(b[j], (j, 0, n - 1))", "Layout('axis', 'dim'), params=(Param('axis', -1),)",
     "use Layout('axis', 'axis')"),
    ("a[i] * b[i]", "Layout('flatten')", "use Layout('elementwise')"),
    ("a[i] * b[i]", "Layout('rows')", "use Layout('elementwise')"),
    ("a[i] * b[i]", "Layout('channels')", "use Layout('elementwise')"),
])
def test_a_layout_that_does_not_fit_names_the_one_that_does(output, layout, right, tmp_path, capsys):
    out = tmp_path / "out"
    path = layout_model(tmp_path, output, f", layout={layout}")
    assert main(["generate", "--model", str(path), "--out", str(out), "-q"]) == 2
    err = one_error(capsys)
    assert "does not fit" in err and right in err, err
    assert not out.exists()


def test_a_generation_killed_outright_leaves_no_worker_running(tmp_path):
    """Regression: SIGKILL on `derive generate` while its pool rendered left the workers running,
    orphans that held the caller's stderr pipe open until they were done (a hang for a caller reading
    it); each worker now ends when its parent does."""
    process = subprocess.Popen(
        [sys.executable, "-m", "derive.cli", "generate", "sub", "batchnorm", "group_norm", "-j", "2", "--no-cache",
         "--out", str(tmp_path / "gen")], cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)), start_new_session=True)
    watched = Watched(process)
    try:
        watched.wait_for("derive: [1/", timeout=300)  # sub is done; batchnorm and group_norm render for 20 s and more
        process.kill()
        watched.finish(timeout=15)  # every writer of the pipe gone: the workers too
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever the test left running
            os.killpg(process.pid, signal.SIGKILL)
