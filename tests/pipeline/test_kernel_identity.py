"""Kernel identity: a user model's kernels belong to its file (real path and text), never to another
file that defines an operator of the same name, nor to a stale bytecode or cache entry; and caches
are used only where no one else can write."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import derive
from derive.cli import main
from derive.errors import UntrustedCacheWarning
from derive.pipeline import cache

SCALE = '''\
import sympy as sp
from derive.model import Input, OperatorModel, index, size
from derive.registry import register
from helper import FACTOR


@register
def scale() -> OperatorModel:
    n = size("n")
    i = index("i", n)
    x = Input("x", (n,))
    return OperatorModel(name="scale", summary="x times a constant", category="elementwise",
                         inputs=(x,), output_indices=(i,), output=FACTOR * x[i])
'''


def scale_files(root: Path, factors: dict[str, int]) -> dict[int, Path]:
    """One folder per factor, each with a model file ``scale.py`` (the same text) and the
    ``helper.py`` it imports, which holds the factor: two operators named alike, that differ."""
    files = {}
    for folder, factor in factors.items():
        (root / folder).mkdir()
        (root / folder / "helper.py").write_text(f"FACTOR = {factor}\n")
        (root / folder / "scale.py").write_text(SCALE)
        files[factor] = root / folder / "scale.py"
    return files


@pytest.fixture
def two_scales(tmp_path, monkeypatch) -> dict[int, Path]:
    monkeypatch.setenv("DERIVE_CACHE_DIR", str(tmp_path / "cache"))
    return scale_files(tmp_path, {"m1": 2, "m2": 3})


def test_two_model_files_of_one_name_are_two_kernels(two_scales):
    x = np.linspace(-1.0, 1.0, 5)
    for _ in range(2):  # the second round from the kernels folder and the render cache
        for factor, path in two_scales.items():
            kernel = derive.kernel(path, "numpy")
            assert np.allclose(kernel.forward(x), factor * x)
            assert np.allclose(kernel.vjp(np.ones(5), x)[0], factor)


def test_two_loaded_models_of_one_name_render_their_own_files(two_scales):
    models = {factor: derive.load(path) for factor, path in two_scales.items()}  # both loaded, then rendered
    for factor, model in models.items():
        assert model.origin != models[5 - factor].origin
        kernel = derive.render(model, ["numpy"])["numpy/scale.py"]
        assert f"{factor} * x" in kernel.replace("*x", " * x") or f"{factor}*x" in kernel, kernel


def test_a_rewritten_kernel_file_is_never_served_from_stale_bytecode(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # as Python runs by default
    kernel = tmp_path / "k.py"
    kernel.write_text("VALUE = 2\n")
    assert derive.load_kernel(kernel).VALUE == 2
    stamp = kernel.stat()
    kernel.write_text("VALUE = 3\n")  # the same size, and the same mtime: a .pyc would look current
    os.utime(kernel, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert derive.load_kernel(kernel).VALUE == 3


def test_the_torch_adapter_gets_each_files_kernel(two_scales):
    torch = pytest.importorskip("torch")
    import derive.torch as dtorch

    for factor, path in two_scales.items():
        x = torch.linspace(-1.0, 1.0, 5, dtype=torch.float64, requires_grad=True)
        y = dtorch.operator(str(path))(x)
        y.sum().backward()
        assert torch.allclose(y, factor * x) and torch.allclose(x.grad, torch.full_like(x, factor))


def test_the_jax_adapter_gets_each_files_kernel(two_scales):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import derive.jax as djax

    for factor, path in two_scales.items():
        function = djax.operator(str(path))
        x = jax.numpy.linspace(-1.0, 1.0, 5)
        assert np.allclose(function(x), factor * np.asarray(x))
        assert np.allclose(jax.grad(lambda v: function(v).sum())(x), factor)


def test_generate_model_writes_each_files_kernel(two_scales, tmp_path, capsys):
    for factor, path in two_scales.items():
        out = tmp_path / f"out{factor}"
        assert main(["generate", "--model", str(path), "--out", str(out), "-q"]) == 0
        kernel = derive.load_kernel(out / "numpy" / "scale.py")
        assert np.allclose(kernel.forward(np.ones(3)), factor)


def test_a_model_claiming_a_builtin_source_is_not_served_the_builtin(tmp_path, monkeypatch):
    monkeypatch.setenv("DERIVE_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "relu.py"
    path.write_text(textwrap.dedent('''\
        from derive.model import Input, OperatorModel, index, size
        from derive.registry import register


        @register
        def relu() -> OperatorModel:
            n = size("n")
            i = index("i", n)
            x = Input("x", (n,))
            return OperatorModel(name="relu", summary="not relu: x cubed", category="elementwise",
                                 inputs=(x,), output_indices=(i,), output=x[i] ** 3,
                                 source="derive/ops/activations.py")
        '''))
    kernel = derive.kernel(path, "numpy")
    assert np.allclose(kernel.forward(np.array([-2.0, 3.0])), [-8.0, 27.0])


# -- caches another user could write ---------------------------------------------------------------

def _planted_entry(folder: Path, name: str, text: str) -> Path:
    """A render-cache entry for the built-in ``name`` whose numpy kernel is ``text``, with a digest
    that matches (anyone can compute it)."""
    files = dict(cache.RenderCache(folder).load(name) or derive.render(name))
    files[f"numpy/{name}.py"] = text
    path = folder / "renders" / f"{cache.key(name)}.json"
    path.write_text(json.dumps({"format": cache.FORMAT, "operator": name, "files": files,
                                "digest": cache.files_digest(files)}))
    return path


@pytest.mark.skipif(os.name != "posix", reason="owners and mode bits are POSIX")
@pytest.mark.parametrize("how", ["other-writable folder", "folder of another user", "entry of another user",
                                 "group-writable entry", "symlinked entry"])
def test_a_cache_someone_else_could_write_is_not_used(how, tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("DERIVE_CACHE_DIR", str(folder))
    cache.RenderCache(folder).store("relu", derive.render("relu"))  # a genuine entry first
    entry = _planted_entry(folder, "relu", "PLANTED = True\n")
    if how == "other-writable folder":
        folder.chmod(0o777)
    elif how == "folder of another user":
        if os.geteuid() != 0:
            pytest.skip("only root can give a folder to another user")
        os.chown(folder, 65534, 65534)
    elif how == "entry of another user":
        if os.geteuid() != 0:
            pytest.skip("only root can give a file to another user")
        os.chown(entry, 65534, 65534)
    elif how == "group-writable entry":
        entry.chmod(0o664)
    else:
        target = tmp_path / "elsewhere.json"
        entry.rename(target)
        entry.symlink_to(target)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        served = cache.RenderCache(folder).load("relu")
    assert served is None
    assert any(issubclass(w.category, UntrustedCacheWarning) for w in caught), [str(w.message) for w in caught]


def test_the_cache_folders_derive_creates_are_private(tmp_path):
    folder = tmp_path / "new" / "cache"
    cache.RenderCache(folder).store("relu", derive.render("relu"))
    for path in (folder, folder / "renders"):
        assert path.stat().st_mode & 0o077 == 0, oct(path.stat().st_mode)
    assert cache.RenderCache(folder).load("relu") is not None


@pytest.mark.skipif(os.name != "posix", reason="owners and mode bits are POSIX")
def test_kernels_of_a_model_file_never_come_from_a_folder_others_can_write(two_scales, tmp_path):
    path = two_scales[2]
    derive.kernel(path, "numpy")  # rendered into the cache's kernels folder
    kernels = tmp_path / "cache" / "kernels"
    for planted in kernels.rglob("scale.py"):
        planted.write_text(planted.read_text().replace("2 * x", "7 * x").replace("2*x", "7*x"))
    kernels.chmod(0o777)
    with pytest.warns(UntrustedCacheWarning, match="can be written by other users"):
        kernel = derive.kernel(path, "numpy")
    assert np.allclose(kernel.forward(np.ones(3)), 2.0)
