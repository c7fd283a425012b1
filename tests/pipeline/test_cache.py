"""The render cache (hit, miss after a template or model change, --no-cache) and parallel derivation."""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import GENERATED

from derive import api
from derive.cli import main
from derive.model import registry
from derive.pipeline import cache, generate
from derive.targets import base


def tree(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def _operator(path: str) -> str:
    """The operator a generated file belongs to: numpy/x.py, latex/x.tex, latex/x-body.tex, latex/x.json."""
    return path.rsplit("/", 1)[-1].split(".")[0].removesuffix("-body")


def _text(files: dict) -> dict:
    return {path: data.decode("utf-8") for path, data in files.items()}


def scales_by(out: Path, factor: int) -> bool:
    """Whether the written scaled_copy kernel multiplies by ``factor`` (its forward and its vjp)."""
    kernel = api.load_kernel(out / "numpy" / "scaled_copy.py")
    x, dy = np.array([1.0, -2.0]), np.array([0.5, 3.0])
    return np.array_equal(kernel.forward(x), factor * x) and np.array_equal(kernel.vjp(dy, x)[0], factor * dy)


def committed() -> dict:
    """What derive writes into generated/: the files and the manifest (not the hand-written
    package marker __init__.py, nor bytecode)."""
    return {path: data for path, data in tree(GENERATED).items() if path != "__init__.py"}


def written(folder) -> dict:
    """The files derive wrote into ``folder``, without its manifest (a partial run's lists fewer)."""
    return {path: data for path, data in tree(folder).items() if path != ".derive-manifest"}


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("DERIVE_CACHE_DIR", str(folder))
    return folder


def plant(entry, operator: str, files: dict) -> None:
    """Write a cache entry as the README documents it: the files and the SHA-256 of their sorted JSON."""
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode("utf-8")).hexdigest()
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text(json.dumps({"format": "derive-render-cache-2", "operator": operator, "files": files,
                                 "digest": digest}))


def refuse_to_derive(monkeypatch):
    def refuse(name):
        raise AssertionError(f"{name} was derived although the cache holds it")

    monkeypatch.setattr(generate, "render_one", refuse)


MISSING = ("relu", "softmax")


def test_unchanged_generate_is_served_from_the_cache(tmp_path, cache_dir, monkeypatch, capsys, rendered,
                                                     private_render_cache):
    """A generate stores what it derived, and run again unchanged derives nothing.  The cache starts
    as a copy of the test run's (every operator rendered) less two operators' entries."""
    shutil.copytree(private_render_cache, cache_dir, ignore=shutil.ignore_patterns(".entry-*"))  # not half-written
    for name in MISSING:
        (cache_dir / "renders" / f"{cache.key(name)}.json").unlink()
    out = tmp_path / "gen"
    assert main(["generate", "--out", str(out), "--jobs", "1"]) == 0
    first = tree(out)
    assert capsys.readouterr().err.count("from the cache") == len(registry.names()) + 1 - len(MISSING)
    assert all(cache.RenderCache().load(name) == {path: text for path, text in _text(first).items()
                                                  if _operator(path) == name} for name in MISSING)
    refuse_to_derive(monkeypatch)
    assert main(["generate", "--out", str(out), "--jobs", "1"]) == 0
    assert tree(out) == first == committed()
    assert capsys.readouterr().err.count("from the cache") == len(registry.names()) + 1
    assert main(["check", "--out", str(out), "-q"]) == 0


def test_no_cache_derives_again(tmp_path, cache_dir, monkeypatch):
    """A planted entry is served from the cache, and ignored with --no-cache."""
    out = tmp_path / "gen"
    entry = cache_dir / "renders" / f"{cache.key('softmax')}.json"
    plant(entry, "softmax", {"numpy/softmax.py": "planted\n"})
    assert main(["generate", "softmax", "--out", str(out), "-q"]) == 0
    assert (out / "numpy" / "softmax.py").read_text() == "planted\n"
    assert main(["generate", "softmax", "--out", str(out), "-q", "--no-cache"]) == 0
    assert (out / "numpy" / "softmax.py").read_bytes() == (GENERATED / "numpy" / "softmax.py").read_bytes()
    assert json.loads(entry.read_text())["files"]["numpy/softmax.py"] == "planted\n"  # --no-cache writes nothing


def test_unreadable_entry_is_a_miss(tmp_path, cache_dir):
    entry = cache_dir / "renders" / f"{cache.key('sigmoid')}.json"
    entry.parent.mkdir(parents=True)
    entry.write_text("{not json")
    assert cache.RenderCache().load("sigmoid") is None
    out = tmp_path / "gen"
    assert main(["generate", "sigmoid", "--out", str(out), "-q"]) == 0
    assert (out / "numpy" / "sigmoid.py").read_bytes() == (GENERATED / "numpy" / "sigmoid.py").read_bytes()
    entry = cache.RenderCache().load("sigmoid")
    assert entry["numpy/sigmoid.py"] == (GENERATED / "numpy" / "sigmoid.py").read_text()
    assert entry["latex/sigmoid.tex"] == (GENERATED / "latex" / "sigmoid.tex").read_text()


def test_an_entry_edited_on_disk_is_not_served(tmp_path, cache_dir):
    out = tmp_path / "gen"
    assert main(["generate", "relu", "--out", str(out), "-q"]) == 0
    entry = cache_dir / "renders" / f"{cache.key('relu')}.json"
    stored = json.loads(entry.read_text())
    stored["files"]["numpy/relu.py"] = stored["files"]["numpy/relu.py"].replace("np.greater(x, 0)", "np.less(x, 0)")
    assert stored["files"]["numpy/relu.py"] != (GENERATED / "numpy" / "relu.py").read_text()
    entry.write_text(json.dumps(stored))  # the digest no longer matches the files
    assert cache.RenderCache().load("relu") is None
    other = tmp_path / "other"
    assert main(["generate", "relu", "--out", str(other), "-q"]) == 0
    assert (other / "numpy" / "relu.py").read_bytes() == (GENERATED / "numpy" / "relu.py").read_bytes()
    assert main(["check", "relu", "--out", str(other), "-q"]) == 0
    assert cache.RenderCache().load("relu")["numpy/relu.py"] == (GENERATED / "numpy" / "relu.py").read_text()


@pytest.mark.parametrize("key", ["../../x", "/tmp/derive-cache-absolute-x", "numpy/../../../x"])
def test_an_entry_naming_a_file_outside_out_is_not_served(key, tmp_path, cache_dir):
    out = tmp_path / "a" / "b" / "gen"
    plant(cache_dir / "renders" / f"{cache.key('relu')}.json", "relu",
          {"numpy/relu.py": "planted\n", key: "escaped\n"})
    assert cache.RenderCache().load("relu") is None
    assert main(["generate", "relu", "--out", str(out), "-q"]) == 0
    assert not (tmp_path / "a" / "x").exists() and not (tmp_path / "x").exists()
    assert not Path("/tmp/derive-cache-absolute-x").exists()
    assert (out / "numpy" / "relu.py").read_bytes() == (GENERATED / "numpy" / "relu.py").read_bytes()


def test_a_model_file_is_served_from_the_cache_until_it_changes(tmp_path, cache_dir, monkeypatch, capsys):
    source = tmp_path / "scaled.py"
    source.write_text(textwrap.dedent(MODEL).format(factor=3))
    out = tmp_path / "gen"
    assert main(["generate", "--model", str(source), "--out", str(out)]) == 0
    first = tree(out)
    assert scales_by(out, 3)
    capsys.readouterr()

    def refuse(model, **options):
        raise AssertionError(f"{model.name} was derived although the cache holds it")

    real = generate.render_model
    monkeypatch.setattr(generate, "render_model", refuse)
    assert main(["generate", "--model", str(source), "--out", str(out)]) == 0
    assert "scaled_copy (unchanged, from the cache)" in capsys.readouterr().err
    assert tree(out) == first
    monkeypatch.setattr(generate, "render_model", real)
    source.write_text(textwrap.dedent(MODEL).format(factor=5))
    assert main(["generate", "--model", str(source), "--out", str(out)]) == 0
    assert "from the cache" not in capsys.readouterr().err
    assert scales_by(out, 5)


def test_template_change_misses_the_cache(tmp_path, cache_dir, monkeypatch):
    templates = tmp_path / "templates"
    shutil.copytree(base.template_folder(), templates)
    monkeypatch.setattr(base, "template_folder", lambda: templates)
    monkeypatch.setattr(cache, "template_folder", lambda: templates)
    cache.engine_fingerprint.cache_clear()
    out = tmp_path / "gen"
    assert main(["generate", "relu", "--out", str(out), "-q"]) == 0
    before = cache.key("relu")
    kernel_template = templates / "numpy" / "kernel.py.jinja"
    kernel_template.write_text(kernel_template.read_text() + "# a new line in the template\n")
    cache.engine_fingerprint.cache_clear()
    try:
        assert cache.key("relu") != before
        assert main(["generate", "relu", "--out", str(out), "-q"]) == 0
        assert (out / "numpy" / "relu.py").read_text().endswith("# a new line in the template\n")
    finally:
        cache.engine_fingerprint.cache_clear()


MODEL = '''
import sympy as sp
from derive.model import Input, OperatorModel, index, size
from derive.registry import register


@register
def scaled_copy() -> OperatorModel:
    n = size("n")
    i = index("i", n)
    x = Input("x", (n,))
    return OperatorModel(name="scaled_copy", summary="x times a constant", category="elementwise",
                         inputs=(x,), output_indices=(i,), output={factor} * x[i])
'''


def test_model_change_misses_the_cache(tmp_path, cache_dir, monkeypatch):
    (tmp_path / "models").mkdir()
    source = tmp_path / "models" / "scaled_copy_model.py"
    source.write_text(textwrap.dedent(MODEL).format(factor=3))
    monkeypatch.syspath_prepend(str(tmp_path / "models"))
    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))
    module = importlib.import_module("scaled_copy_model")
    try:
        out = tmp_path / "gen"
        assert main(["generate", "scaled_copy", "--out", str(out), "-q"]) == 0
        assert scales_by(out, 3)
        source.write_text(textwrap.dedent(MODEL).format(factor=5))
        importlib.reload(module)
        assert main(["generate", "scaled_copy", "--out", str(out), "-q"]) == 0
        assert scales_by(out, 5)
    finally:
        sys.modules.pop("scaled_copy_model", None)


def test_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("DERIVE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.default_folder() == tmp_path / "xdg" / "derive"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.default_folder() == tmp_path / "home" / ".cache" / "derive"
    monkeypatch.setenv("DERIVE_CACHE_DIR", str(tmp_path / "mine"))
    assert cache.default_folder() == tmp_path / "mine"


POOL_SAMPLE = ("relu", "sigmoid", "softmax", "matmul")
"""Four light operators of three layouts, so that the pool of two processes has work for both."""


def test_parallel_and_serial_derivation_write_the_same_bytes(tmp_path, cache_dir):
    """One process, a pool of two filling a new cache, and that cache write the same bytes (a sample
    of operators: the pool is under test here; test_cli checks every operator's bytes)."""
    serial, parallel, cached = tmp_path / "serial", tmp_path / "parallel", tmp_path / "cached"
    assert main(["generate", *POOL_SAMPLE, "--out", str(serial), "-q", "--no-cache", "--jobs", "1"]) == 0
    assert main(["generate", *POOL_SAMPLE, "--out", str(parallel), "-q", "--jobs", "2"]) == 0
    assert main(["generate", *POOL_SAMPLE, "--out", str(cached), "-q", "--jobs", "2"]) == 0  # all from the cache
    expected = {path: data for path, data in committed().items() if _operator(path) in POOL_SAMPLE}
    assert written(serial) == written(parallel) == written(cached) == expected


def test_an_error_in_a_worker_process_is_reported_and_writes_nothing(tmp_path, monkeypatch, capsys):
    """'broken' is registered here only: the worker deriving it fails, the command reports it."""
    out = tmp_path / "gen"
    shutil.copytree(GENERATED, out)
    before = tree(out)
    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))
    monkeypatch.setitem(registry._FACTORIES, "broken", lambda: None)
    assert main(["generate", "relu", "broken", "--out", str(out), "-q", "--jobs", "2", "--no-cache"]) == 2
    assert "'broken'" in capsys.readouterr().err
    assert tree(out) == before


def test_jobs_must_be_positive(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--jobs", "0"])
    assert "expected a positive integer" in capsys.readouterr().err


INTERRUPT_IN_FUTURES = '''
import os, signal, sys
import concurrent.futures._base as futures_base
from derive.pipeline import generate

sent = []


def enter(self):
    """_AcquireFutures.__enter__ with a Ctrl-C landing after its first lock is taken: where a signal
    can arrive in a thread waiting on a pool's futures."""
    for position, future in enumerate(self.futures):
        future._condition.acquire()
        if position == 0 and not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGINT)


if __name__ == "__main__":  # the pool's workers may import this file again
    futures_base._AcquireFutures.__enter__ = enter
    try:
        for _ in generate._derive_all(sys.argv[1:], 2):
            pass
    except KeyboardInterrupt:
        print("interrupted", flush=True)
'''


INTERRUPT_AS_THE_POOL_STARTS = '''
import os, signal, sys
import multiprocessing.forkserver as forkserver
from derive.pipeline import generate

generate._threads = lambda: 2  # as in the command line, where NumPy's threads make it use the fork server
original = forkserver.connect_to_new_process
sent = []


def connect(fds):
    """A Ctrl-C from the terminal (to the whole process group) just as the first worker is asked for,
    while the fork server is still importing derive: it stops the fork server too."""
    if not sent:
        sent.append(True)
        os.killpg(0, signal.SIGINT)
    return original(fds)


if __name__ == "__main__":  # the fork server's workers import this file again
    forkserver.connect_to_new_process = connect
    try:
        for _ in generate._derive_all(sys.argv[1:], 2):
            pass
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    except BaseException as error:
        print(type(error).__name__, flush=True)
'''


def test_ctrl_c_as_the_pool_starts_is_an_interrupt_not_an_internal_error(tmp_path):
    """A Ctrl-C that stops the fork server before the pool has its workers broke the pool with an
    EOFError, which the command reported as an internal error (exit 3)."""
    script = tmp_path / "interrupt.py"
    script.write_text(INTERRUPT_AS_THE_POOL_STARTS)
    done = subprocess.run([sys.executable, str(script), *POOL_SAMPLE], capture_output=True, text=True,
                          timeout=60, start_new_session=True)
    assert done.stdout == "interrupted\n", done.stdout + done.stderr


WORKER_ENDED_MID_RESULT = '''
import os, signal, struct, sys, time
from derive.pipeline import generate

generate._threads = lambda: 1  # fork: the workers run this module's function as patched here
parent = os.getpid()


def half_sent(name):
    """A worker that has sent the first bytes of its result when the Ctrl-C comes (a large result is
    written in pieces), and is stopped before the rest."""
    results = sys._getframe(1).f_locals["result_queue"]  # concurrent.futures' worker loop
    os.write(results._writer.fileno(), struct.pack("!i", 1000) + b"partial")
    os.kill(parent, signal.SIGINT)
    time.sleep(60)


if __name__ == "__main__":
    generate.render_one = half_sent
    try:
        for _ in generate._derive_all(sys.argv[1:], 2):
            pass
    except KeyboardInterrupt:
        print("interrupted", flush=True)
'''


@pytest.mark.parametrize("script", [INTERRUPT_IN_FUTURES, WORKER_ENDED_MID_RESULT],
                         ids=["interrupt-inside-concurrent.futures", "worker-ended-mid-result"])
def test_ctrl_c_while_the_pool_is_waited_on_never_hangs_the_exit(script, tmp_path):
    """The occasional stall of a parallel generate after Ctrl-C ("1 of 26 operators were ready", no
    worker alive), two ways: a Ctrl-C that lands while this thread holds a future's lock (inside
    ``concurrent.futures``) left that lock held, and a worker stopped part-way through sending its
    result left the pool's manager thread reading the rest of the message; either way the manager
    thread waited forever, and so did the process at exit, which joins it."""
    path = tmp_path / "interrupt.py"
    path.write_text(script)
    try:
        done = subprocess.run([sys.executable, str(path), *POOL_SAMPLE], capture_output=True, text=True,
                              timeout=60, start_new_session=True)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"the interrupted pool did not let the process exit: {error.stderr}")
    assert done.stdout == "interrupted\n", done.stderr
