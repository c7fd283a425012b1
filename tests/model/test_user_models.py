"""User models: the README's walkthrough as written, a model from a temporary folder verified by finite
differences, isolation from the built-in registry, operators from installed packages (entry points)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, finite_differences
from helpers.commands import run_derive
from helpers.readme import fenced, readme_section

import derive
from derive.cli import main
from derive.model import registry


def expected_status(comment: str) -> int:
    if "NOT EQUAL" in comment:
        return 1
    if "EQUAL" in comment:
        return 0
    found = re.search(r"exit (\d+)", comment)
    return int(found.group(1)) if found else 0


def run_readme_commands(block: str, cwd: Path) -> list[subprocess.CompletedProcess]:
    """Run every ``derive ...`` line of a README bash block; each exits as its comment says."""
    results = []
    for line in block.splitlines():
        if not line.startswith("derive "):
            continue
        command, _, comment = line.partition("#")
        result = run_derive(shlex.split(command)[1:], cwd)
        assert result.returncode == expected_status(comment), f"{line}\n{result.stdout}\n{result.stderr}"
        if "EQUAL" in comment:
            verdict = "NOT EQUAL:" if "NOT EQUAL" in comment else "EQUAL:"
            assert any(out.startswith(verdict) for out in result.stdout.splitlines()), result.stdout
        results.append(result)
    return results


MODEL_FILE = "swiglu.py"


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory) -> Path:
    """A fresh folder where the README's model file is saved and its commands have been run."""
    folder = tmp_path_factory.mktemp("readme")
    section = readme_section("Your own operator, from scratch")
    (model_block,) = [b for b in fenced(section, "python") if "@register" in b]
    assert f"Save this as `{MODEL_FILE}`" in section
    (folder / MODEL_FILE).write_text(model_block, encoding="utf-8")
    (commands,) = [b for b in fenced(section, "bash") if "--model" in b]
    run_readme_commands(commands, folder)
    return folder


def test_readme_walkthrough_writes_a_kernel_that_runs_as_shown(walkthrough):
    kernel_file = walkthrough / "my_kernels" / "numpy" / "swiglu.py"
    assert kernel_file.is_file()
    assert "regenerate with `derive generate --model swiglu.py --out DIR`" in kernel_file.read_text()
    section = readme_section("Your own operator, from scratch")
    (usage,) = [b for b in fenced(section, "python") if "from my_kernels" in b]
    check = "\nassert y.shape == a.shape and da.shape == a.shape and db.shape == b.shape and dy.shape == y.shape\n"
    result = subprocess.run([sys.executable, "-c", usage + check], cwd=walkthrough, capture_output=True,
                            text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert result.returncode == 0, result.stderr


def test_readme_show_excerpt_is_what_show_prints(walkthrough):
    shown = run_derive(["show", "--model", MODEL_FILE], walkthrough).stdout
    excerpt = [b for b in fenced(readme_section("Your own operator, from scratch"), "") if "vjp" in b][0]
    lines = [line.rstrip() for line in shown.splitlines()]
    for line in excerpt.splitlines():
        assert line.rstrip() in lines, line


def test_readme_error_messages_are_what_derive_prints(walkthrough, tmp_path):
    """The three messages the README shows come from these three mistakes in its model file."""
    good = (walkthrough / MODEL_FILE).read_text()
    original = "output=a[i] * b[i] / (1 + sp.exp(-beta * b[i]))"
    assert original in good
    mistakes = ["output=a[i] * b[index('j', n)] / (1 + sp.exp(-beta * b[i]))",
                "output=a[i + 1] * b[i] / (1 + sp.exp(-beta * b[i]))",
                "output=a[i] * sp.Function('gate')(b[i])"]
    section = readme_section("Your own operator, from scratch")
    shown = [line for line in section.splitlines() if line.startswith("derive: error:")]
    assert len(shown) == len(mistakes)
    for mistake, message in zip(mistakes, shown):
        (tmp_path / MODEL_FILE).write_text(good.replace(original, mistake))
        result = run_derive(["generate", "--model", MODEL_FILE, "--out", "out"], tmp_path)
        assert result.returncode == 2 and result.stderr.strip() == message
        assert not (tmp_path / "out").exists()


def test_readme_claims_print_what_the_readme_shows(walkthrough):
    section = readme_section("Checking a hand-derived formula")
    for block in fenced(section, "bash"):
        run_readme_commands(block, walkthrough)
    (excerpt,) = [b for b in fenced(section, "") if "counterexample" in b]
    wrong = run_derive(["claim", "--model", MODEL_FILE, "--wrt", "b", "--vjp", "dy[k]*a[k]*sigmoid(beta*b[k])"],
                       walkthrough)
    assert excerpt.strip() in wrong.stdout


def test_readme_python_interface_block_runs(walkthrough):
    (block,) = fenced(readme_section("From Python"), "python")
    result = subprocess.run([sys.executable, "-c", block], cwd=walkthrough, capture_output=True, text=True,
                            timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert result.returncode == 0, result.stderr
    assert (walkthrough / "my_kernels" / "numpy" / "rmsnorm.py").is_file()
    assert "dot_x" in result.stdout and "dot_gamma" in result.stdout  # derive.vjp_jvp's expression


GATED_NORM = '''
"""A norm with a learned gate: y_i = x_i / sqrt(mean(x^2) + eps) * sigmoid(z_i) * scale_i."""

import sympy as sp

from derive.model import Input, OperatorModel, Param, index, size
from derive.registry import register


@register
def gated_norm() -> OperatorModel:
    n = size("n")
    i, j = index("i", n), index("j", n)
    x, z = Input("x", (n,)), Input("z", (n,))
    scale = Input("scale", (n,), optional=True, default=1)
    eps = sp.Symbol("epsilon", positive=True)
    rms = sp.sqrt(sp.Sum(x[j] ** 2, (j, 0, n - 1)) / n + eps)
    return OperatorModel(
        name="gated_norm", summary="rms-normalised x, gated by sigmoid(z), scaled", category="custom",
        inputs=(x, z, scale), params=(Param("eps", 1e-5, eps, "inside the root"),),
        output_indices=(i,), output=x[i] / rms / (1 + sp.exp(-z[i])) * scale[i], where=(("r", rms),))
'''


def test_user_model_from_a_temporary_folder_is_right_by_finite_differences(tmp_path):
    (tmp_path / "gated_norm.py").write_text(GATED_NORM)
    assert main(["generate", "--model", str(tmp_path / "gated_norm.py"), "--out", str(tmp_path / "out"), "-q"]) == 0
    kernel = derive.load_kernel(tmp_path / "out" / "numpy" / "gated_norm.py")
    rng = np.random.default_rng(5)
    for batch, n in (((), 1), ((3,), 4), ((2, 3), 5)):
        inputs = [rng.standard_normal(batch + (n,)), rng.standard_normal(batch + (n,)), rng.standard_normal(n)]
        x, z, scale = inputs
        expected = x / np.sqrt(np.mean(x ** 2, axis=-1, keepdims=True) + 1e-5) / (1 + np.exp(-z)) * scale
        np.testing.assert_allclose(kernel.forward(*inputs), expected, rtol=1e-12)
        cotangent = rng.standard_normal(expected.shape)
        for position, grad in enumerate(kernel.vjp(cotangent, *inputs)):
            np.testing.assert_allclose(grad, finite_differences.vjp(kernel.forward, cotangent, inputs, position),
                                       rtol=1e-6, atol=1e-8, err_msg=f"gradient of {kernel.INPUTS[position]}")
        tangents = [rng.standard_normal(a.shape) for a in inputs]
        np.testing.assert_allclose(kernel.jvp(tangents, *inputs),
                                   finite_differences.jvp(kernel.forward, tangents, inputs), rtol=1e-6, atol=1e-8)


def test_loading_a_model_file_leaves_the_builtin_registry_alone(tmp_path, rendered):
    (tmp_path / "gated_norm.py").write_text(GATED_NORM)
    before = registry.names()
    assert list(derive.load_file(tmp_path / "gated_norm.py")) == ["gated_norm"]
    assert registry.names() == before and "gated_norm" not in registry.names()
    out = tmp_path / "full"
    assert main(["generate", "--out", str(out), "-q"]) == 0
    assert sorted(p.stem for p in (out / "numpy").glob("*.py")) == sorted(before)
    with pytest.raises(registry.UnknownOperatorError):
        registry.get("gated_norm")


def test_model_file_with_two_operators_needs_a_name(tmp_path, capsys):
    second = GATED_NORM.replace("def gated_norm()", "def gated_norm2()")
    second = second.replace('name="gated_norm"', 'name="gated_norm2"')
    (tmp_path / "two.py").write_text(GATED_NORM + second.split("from derive.registry import register", 1)[1])
    assert main(["show", "--model", str(tmp_path / "two.py")]) == 2
    assert "defines 2 operators (gated_norm, gated_norm2); name one" in capsys.readouterr().err
    assert main(["show", "gated_norm2", "--model", str(tmp_path / "two.py"), "--ascii"]) == 0
    assert "gated_norm2:" in capsys.readouterr().out
    assert main(["show", "gated_nrom", "--model", str(tmp_path / "two.py")]) == 2
    assert "unknown operator 'gated_nrom'. Did you mean gated_norm" in capsys.readouterr().err


@pytest.mark.parametrize("body,message", [
    ("def f(:\n", "bad.py:1: syntax error"),
    ("import no_such_module_here\n", "bad.py:1: ModuleNotFoundError: No module named 'no_such_module_here'"),
    ("x = 1\n", "registers no operator; decorate a function returning an OperatorModel with @register"),
    ("from derive.registry import register\n\n@register\ndef op():\n    raise RuntimeError('oops')\n",
     "bad.py:5: op() failed: RuntimeError: oops"),
    ("from derive.registry import register\n\n@register\ndef op():\n    return 3\n",
     "op() failed: TypeError: op() returned int, not an OperatorModel"),
])
def test_a_broken_model_file_is_one_clear_error_and_writes_nothing(tmp_path, capsys, body, message):
    (tmp_path / "bad.py").write_text(body)
    out = tmp_path / "out"
    assert main(["generate", "--model", str(tmp_path / "bad.py"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1
    assert not out.exists()


def test_a_missing_model_file_and_a_missing_out_folder_are_clear_errors(tmp_path, capsys):
    assert main(["show", "--model", str(tmp_path / "nope.py")]) == 2
    assert f"{tmp_path / 'nope.py'}: no such model file" in capsys.readouterr().err
    (tmp_path / "gated_norm.py").write_text(GATED_NORM)
    assert main(["generate", "--model", str(tmp_path / "gated_norm.py")]) == 2
    assert "--model needs --out DIR" in capsys.readouterr().err


PLUGIN = '''
import sympy as sp
from derive.model import Input, OperatorModel, index, size
from derive.registry import register


@register
def squareplus() -> OperatorModel:
    n = size("n")
    i = index("i", n)
    x = Input("x", (n,))
    return OperatorModel(name="squareplus", summary="(x + sqrt(x^2 + 4)) / 2", category="activations",
                         inputs=(x,), output_indices=(i,), output=(x[i] + sp.sqrt(x[i] ** 2 + 4)) / 2)
'''


@pytest.fixture
def installed_plugin(tmp_path) -> Path:
    """A folder holding a tiny installed distribution that declares one operator by entry point."""
    site = tmp_path / "site"
    info = site / "squareplus_ops-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: squareplus-ops\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[derive.operators]\nsquareplus = squareplus_ops:squareplus\n")
    (site / "squareplus_ops.py").write_text(PLUGIN)
    return site


def test_installed_package_operators_are_listed_shown_and_generated_by_name(installed_plugin, tmp_path, rendered):
    listing = run_derive(["list"], tmp_path, str(installed_plugin))
    assert listing.returncode == 0, listing.stderr
    assert re.search(r"activations:\n  squareplus .*\[squareplus-ops\]", listing.stdout)
    shown = run_derive(["show", "squareplus", "--ascii"], tmp_path, str(installed_plugin))
    assert shown.returncode == 0 and "with respect to x:" in shown.stdout
    made = run_derive(["generate", "squareplus", "--out", "out", "-q"], tmp_path, str(installed_plugin))
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "out" / "numpy" / "squareplus.py").is_file()
    full = run_derive(["generate", "--out", "full", "-q"], tmp_path, str(installed_plugin))
    assert full.returncode == 0 and not (tmp_path / "full" / "numpy" / "squareplus.py").exists()


def test_entry_points_found_through_importlib_metadata(monkeypatch, tmp_path, capsys):
    """The same through a monkeypatched ``importlib.metadata``, in this process, plus a broken entry."""
    from importlib import metadata

    (tmp_path / "squareplus_ops_inproc.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    entries = [metadata.EntryPoint("squareplus", "squareplus_ops_inproc:squareplus", registry.ENTRY_POINT_GROUP),
               metadata.EntryPoint("ghost", "no_such_module_xyz:ghost", registry.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(registry.metadata, "entry_points",
                        lambda group=None: [e for e in entries if e.group == group])
    assert main(["list"]) == 0
    captured = capsys.readouterr()
    assert "squareplus" in captured.out and "ghost" not in captured.out
    assert "operator 'ghost'" in captured.err and "failed to load: ModuleNotFoundError" in captured.err
    assert derive.load("squareplus").name == "squareplus"
    assert "squareplus" not in registry.names()
    assert "squareplus" in derive.operators()
    assert main(["show", "ghost"]) == 2
    assert "failed to load" in capsys.readouterr().err


def test_model_file_can_import_its_neighbours(tmp_path):
    helper = "import sympy as sp\n\ndef soft(t):\n    return sp.log(1 + sp.exp(t))\n"
    (tmp_path / "helpers_for_model.py").write_text(helper)
    (tmp_path / "uses.py").write_text(textwrap.dedent('''
        from derive.model import Input, OperatorModel, index, size
        from derive.registry import register
        from helpers_for_model import soft

        @register
        def softplus_user() -> OperatorModel:
            n = size("n")
            i = index("i", n)
            x = Input("x", (n,))
            return OperatorModel(name="softplus_user", summary="log(1 + exp(x))", category="custom",
                                 inputs=(x,), output_indices=(i,), output=soft(x[i]))
    '''))
    verdict = derive.claim(derive.load(tmp_path / "uses.py"), "x", "dy[k]*sigmoid(x[k])")
    assert verdict.equal


OWN_FUNCTION = '''
import sympy as sp
from derive.model import Input, OperatorModel, index, size
from derive.registry import register


class smooth_relu(sp.Function):
    """log(1 + exp(t)) with its derivative, its elementary form and its NumPy form declared."""

    def fdiff(self, argindex=1):
        return 1 / (1 + sp.exp(-self.args[0]))

    def as_elementary(self):
        return sp.log(1 + sp.exp(self.args[0]))

    def _numpycode(self, printer):
        return f"np.logaddexp(0, {printer._print(self.args[0])})"


@register
def smooth(power: int = 1) -> OperatorModel:
    n = size("n")
    i = index("i", n)
    x = Input("x", (n,))
    return OperatorModel(name="smooth", summary="softplus(x)^power", category="custom", inputs=(x,),
                         output_indices=(i,), output=smooth_relu(x[i]) ** power)
'''


def test_declared_function_is_checked_through_its_elementary_form_and_printed(tmp_path):
    (tmp_path / "smooth.py").write_text(OWN_FUNCTION)
    model = derive.load(tmp_path / "smooth.py")
    assert derive.claim(model, "x", "dy[k]*sigmoid(x[k])").equal
    wrong = derive.claim(model, "x", "dy[k]*sigmoid(x[k])**2")
    assert not wrong.equal and wrong.counterexample is not None
    derive.write(model, tmp_path / "out")
    kernel = derive.load_kernel(tmp_path / "out" / "numpy" / "smooth.py")
    x = np.array([-30.0, 0.0, 2.0])
    np.testing.assert_allclose(kernel.forward(x), np.logaddexp(0, x))
    np.testing.assert_allclose(kernel.vjp(np.ones(3), x)[0], 1 / (1 + np.exp(-x)))


def test_rebuild_makes_a_variant_of_a_user_model_from_its_own_factory(tmp_path):
    (tmp_path / "smooth.py").write_text(OWN_FUNCTION)
    model = derive.load(tmp_path / "smooth.py")
    squared = registry.rebuild(model, power=2)
    assert squared.source == "smooth.py" and squared.output == model.output ** 2
    assert registry.rebuild(derive.load("softmax")).output == derive.load("softmax").output


CONSTANT = '''"""A constant output, written as a plain Python number."""

from derive.model import Input, OperatorModel, index, size
from derive.registry import register


@register
def two() -> OperatorModel:
    n = size("n")
    i = index("i", n)
    return OperatorModel(name="two", summary="2 everywhere", category="test", inputs=(Input("x", (n,)),),
                         output_indices=(i,), output=2)
'''


def test_an_output_written_as_a_python_number_is_a_constant(tmp_path):
    """output=2 (an int, not a SymPy number) used to crash with AttributeError; it is the constant 2,
    whose gradient is zero."""
    model_file = tmp_path / "two.py"
    model_file.write_text(CONSTANT, encoding="utf-8")
    derive.write(derive.load(model_file), tmp_path / "out")
    kernel = derive.load_kernel(tmp_path / "out" / "numpy" / "two.py")
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(kernel.forward(x), np.full((2, 3), 2.0))
    np.testing.assert_array_equal(kernel.vjp(np.ones((2, 3)), x)[0], np.zeros((2, 3)))
