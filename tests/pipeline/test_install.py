"""derive as a user installs it: the wheel ships every template and the built-in kernels, and the
installed package works from any folder, with no checkout on the path.

The wheel is built from a copy of the sources (so the build writes nothing into the checkout) and
installed non-editable, with the dependencies pyproject.toml declares and nothing else, into one
fresh virtual environment.  The tests form one xdist group, so one worker builds it, once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import GENERATED, ROOT
from helpers.readme import python_blocks

pytestmark = pytest.mark.xdist_group("install")

SOURCES = ("pyproject.toml", "README.md", "derive", "templates", "generated")


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    home: Path
    """An empty folder outside the checkout: the user's working directory."""

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def environment(self) -> dict[str, str]:
        """No checkout on the path, the venv first on PATH, and a render cache nothing else fills."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        env["PATH"] = os.pathsep.join((str(self.venv / "bin"), env.get("PATH", "")))
        env["DERIVE_CACHE_DIR"] = str(self.home.parent / "cache")
        return env

    def run(self, *command: str) -> subprocess.CompletedProcess:
        return subprocess.run(command, cwd=self.home, env=self.environment(), capture_output=True,
                              text=True, timeout=300)


def _step(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.fixture(scope="session")  # all its tests run on one xdist worker: built once
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("install")
    source = work / "source"
    source.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", ".*"))
        else:
            shutil.copy2(path, source / name)
    _step([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"), str(source)], work)
    wheel = next((work / "dist").glob("derive-*.whl"))
    venv = work / "venv"
    _step([sys.executable, "-m", "venv", str(venv)], work)
    _step([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile", str(wheel)], work)
    home = work / "home"
    home.mkdir()
    return Installed(wheel, venv, home)


def test_the_wheel_ships_every_template_and_every_generated_file(installed: Installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    templates = {f"derive/templates/{p.relative_to(ROOT / 'templates').as_posix()}"
                 for p in (ROOT / "templates").rglob("*.jinja")}
    generated = {f"derive/generated/{p.relative_to(GENERATED).as_posix()}"
                 for p in GENERATED.rglob("*")
                 if p.is_file() and not p.name.startswith(".") and "__pycache__" not in p.parts}
    assert any(name.startswith("derive/templates/kernel/layouts/") for name in templates)
    assert {"derive/generated/numpy/rmsnorm.py", "derive/generated/latex/rmsnorm.tex",
            "derive/generated/latex/derive.bib", "derive/generated/array_api/rmsnorm.py"} <= generated
    assert templates - names == set() and generated - names == set()
    modules = {f"derive/{p.relative_to(ROOT / 'derive').as_posix()}" for p in (ROOT / "derive").rglob("*.py")}
    assert modules - names == set()  # a new subpackage not listed in pyproject.toml is left out of the wheel


def test_installed_derive_generates_and_checks_from_any_folder(installed: Installed):
    where = installed.run("python", "-c", "import derive; print(derive.__file__)")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(installed.venv), where.stdout  # not the checkout

    made = installed.run("derive", "generate", "relu", "--out", "X")
    assert made.returncode == 0, made.stderr
    checked = installed.run("derive", "check", "relu", "--out", "X")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (installed.home / "X" / "numpy" / "relu.py").read_bytes() == (GENERATED / "numpy" / "relu.py").read_bytes()
    assert (installed.home / "X" / "latex" / "relu.tex").read_bytes() == (GENERATED / "latex" / "relu.tex").read_bytes()


def test_installed_derive_compiles_the_documents_it_ships_from_any_folder(installed: Installed):
    """No generated/ in the working folder: derive pdf compiles the installed package's document
    (derive bench finds its kernels by the same lookup: test_cli_usage.py)."""
    compiled = installed.run("derive", "pdf", "relu", "-q")
    no_tex = compiled.returncode == 3 and os.environ.get("DERIVE_SKIP_TEX") == "1"  # TeX: as test_latex.py
    assert no_tex or compiled.returncode == 0, compiled.stderr
    assert no_tex or (installed.home / "build" / "pdf" / "relu.pdf").read_bytes().startswith(b"%PDF")


BUILTIN_KERNELS = '''
import pathlib, numpy as np
from importlib import resources
import derive.generated
from derive.generated.numpy import rmsnorm, sigmoid, gelu
x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
gamma = np.ones(8, np.float32)
y = rmsnorm.forward(x, gamma, eps=1e-6)
dx, dgamma, dbeta = rmsnorm.vjp(np.ones_like(y), x, gamma)
assert y.dtype == dx.dtype == dgamma.dtype == np.float32 and dx.shape == x.shape and dbeta is None
assert np.allclose(sigmoid.forward(x), 1 / (1 + np.exp(-x.astype(np.float64))), atol=1e-6)
assert gelu.vjp(np.ones_like(x), x)[0].shape == x.shape
assert (resources.files("derive.generated") / "latex" / "rmsnorm.tex").read_text().startswith("%")
print(pathlib.Path(rmsnorm.__file__).resolve())
'''


def test_builtin_kernels_import_from_the_installed_package(installed: Installed):
    done = installed.run("python", "-c", BUILTIN_KERNELS)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(installed.venv.resolve()), done.stdout


def test_readme_kernel_example_runs_where_derive_is_installed(installed: Installed):
    blocks = [b for b in python_blocks() if "from derive.generated.numpy" in b]
    assert blocks, "the README shows how to call a built-in kernel"
    for block in blocks:
        done = installed.run("python", "-c", block + "\nassert dbeta is None and dx.dtype == x.dtype\n")
        assert done.returncode == 0, done.stderr
