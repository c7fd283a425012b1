"""The output folder: nothing copied or touched but derive's own files, a manifest, a lock, permissions,
leftovers of a killed run, paths that stay inside --out, Ctrl-C, and one-line errors for bad paths."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from derive import api, output
from derive.cache import RenderCache
from derive.cli import main
from derive.generate import Options
from derive.output import MANIFEST, OutputError, locked, write

from conftest import GENERATED, ROOT, Watched

SMALL = ("relu", "sin", "cos", "exp", "log", "tanh", "sigmoid", "softplus")
"""Quick operators (about a second each when derived)."""


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("derive: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# -- nothing but derive's own files ------------------------------------------------------------------

def test_the_folder_is_not_copied_and_other_files_are_untouched(tmp_path):
    out = tmp_path / "home"
    (out / "numpy").mkdir(parents=True)
    (out / "notes.txt").write_text("mine\n")
    (out / "numpy" / "mine.py").write_text("x = 1\n")
    (out / "data").mkdir()
    (out / "data" / "big.bin").write_bytes(b"\0" * 1000)
    inodes = {p: p.stat().st_ino for p in (out, out / "notes.txt", out / "numpy", out / "data" / "big.bin")}
    assert main(["generate", "relu", "--out", str(out), "-q"]) == 0
    assert {p: p.stat().st_ino for p in inodes} == inodes  # the same folder and files, not copies
    assert (out / "notes.txt").read_text() == "mine\n" and (out / "numpy" / "mine.py").read_text() == "x = 1\n"
    assert (out / "numpy" / "relu.py").read_bytes() == (GENERATED / "numpy" / "relu.py").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]  # no staging folder beside it


def test_generating_into_the_current_folder_keeps_the_shell_in_it(tmp_path):
    inode = tmp_path.stat().st_ino
    result = subprocess.run([sys.executable, "-m", "derive.cli", "generate", "relu", "--out", ".", "-q"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert result.returncode == 0, result.stderr
    assert tmp_path.stat().st_ino == inode  # the same folder, not a copy swapped in for it
    assert (tmp_path / "numpy" / "relu.py").is_file()


def test_a_full_run_removes_only_files_it_wrote_before(tmp_path):
    out = tmp_path / "out"
    write(out, {"numpy/a.py": "a\n", "numpy/b.py": "b\n", "latex/a.tex": "a\n"}, full=True)
    (out / "numpy" / "user.py").write_text("mine\n")
    changed = write(out, {"numpy/a.py": "a2\n", "latex/a.tex": "a\n"}, full=True)
    assert sorted(changed) == [MANIFEST, "numpy/a.py", "numpy/b.py"]
    assert files_of(out) == {MANIFEST: (out / MANIFEST).read_bytes(), "numpy/a.py": b"a2\n",
                             "latex/a.tex": b"a\n", "numpy/user.py": b"mine\n"}
    listed = [line for line in (out / MANIFEST).read_text().splitlines() if not line.startswith("#")]
    assert listed == ["latex/a.tex", "numpy/a.py"]


def test_a_partial_run_adds_to_the_manifest_and_removes_nothing(tmp_path):
    out = tmp_path / "out"
    write(out, {"numpy/a.py": "a\n"}, full=False)
    write(out, {"numpy/b.py": "b\n"}, full=False)
    assert (out / "numpy" / "a.py").exists()
    listed = [line for line in (out / MANIFEST).read_text().splitlines() if not line.startswith("#")]
    assert listed == ["numpy/a.py", "numpy/b.py"]


def test_a_crafted_manifest_cannot_make_derive_remove_files_outside(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep\n")
    (out / MANIFEST).write_text("../victim.txt\n/etc/hostname\nnumpy/../../victim.txt\n")
    write(out, {"numpy/a.py": "a\n"}, full=True)
    assert victim.read_text() == "keep\n"


@pytest.mark.parametrize("relative", ["../../x", "/tmp/derive-absolute-x", "numpy/../../x", "numpy//x", "./x", ""])
def test_a_path_that_leaves_the_output_folder_is_refused(relative, tmp_path):
    out = tmp_path / "a" / "out"
    with pytest.raises(OutputError, match="refusing to write"):
        write(out, {"numpy/ok.py": "ok\n", relative: "escaped\n"}, full=False)
    assert not (tmp_path / "x").exists() and not Path("/tmp/derive-absolute-x").exists()
    assert not (out / "numpy" / "ok.py").exists()  # nothing is written when one path is bad


def test_a_symlinked_folder_that_leads_outside_is_refused(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "numpy").symlink_to(elsewhere)
    with pytest.raises(OutputError, match="refusing to write"):
        write(out, {"numpy/a.py": "a\n"}, full=False)
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_new_folders_and_files_follow_the_umask(umask, tmp_path):
    previous = os.umask(umask)
    try:
        assert main(["generate", "relu", "--out", str(tmp_path / "new" / "out"), "-q"]) == 0
    finally:
        os.umask(previous)
    for folder in (tmp_path / "new", tmp_path / "new" / "out", tmp_path / "new" / "out" / "numpy"):
        assert folder.stat().st_mode & 0o777 == 0o777 & ~umask, folder
    assert (tmp_path / "new" / "out" / "numpy" / "relu.py").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_replaced_file_keeps_its_mode(tmp_path):
    out = tmp_path / "out"
    write(out, {"numpy/a.py": "a\n"}, full=False)
    (out / "numpy" / "a.py").chmod(0o640)
    write(out, {"numpy/a.py": "a2\n"}, full=False)
    assert (out / "numpy" / "a.py").stat().st_mode & 0o777 == 0o640


# -- a killed run's leftovers ------------------------------------------------------------------------

def test_leftovers_of_a_killed_run_are_removed_and_ignored_by_git(tmp_path):
    out = tmp_path / "out"
    (out / "numpy").mkdir(parents=True)
    leftovers = [out / "numpy" / ".relu.py.derive-tmp-k1ll3d", out / ".derive-manifest.derive-tmp-x"]
    for path in leftovers:
        path.write_text("half a file")
    (out / "numpy" / ".hidden-but-mine").write_text("mine\n")
    assert main(["generate", "relu", "--out", str(out), "-q"]) == 0
    assert not any(path.exists() for path in leftovers)
    assert (out / "numpy" / ".hidden-but-mine").read_text() == "mine\n"
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: .gitignore cannot be asked")
    for path in ("generated/numpy/.relu.py.derive-tmp-k1ll3d", "generated/latex/.relu.tex.derive-tmp-a_b"):
        assert subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT).returncode == 0, path
    assert subprocess.run(["git", "check-ignore", "-q", "--no-index", f"generated/{MANIFEST}"],
                          cwd=ROOT).returncode == 1, "the manifest of generated/ is committed"


# -- concurrent runs -----------------------------------------------------------------------------------

def test_concurrent_runs_into_one_folder_lose_no_file(tmp_path):
    out = tmp_path / "out"
    options = Options(cache=RenderCache(tmp_path / "cache"))
    models = [api.load(name) for name in SMALL]
    api.write(models, tmp_path / "warm", options=options)  # derive once: the runs below only write
    expected = {path: text for path, text in files_of(tmp_path / "warm").items() if path != MANIFEST}
    errors = []

    def run(model, barrier):
        try:
            barrier.wait()
            api.write(model, out, options=options)
        except BaseException as error:  # noqa: BLE001 - any failure is the finding
            errors.append(error)

    for _ in range(3):
        shutil.rmtree(out, ignore_errors=True)
        barrier = threading.Barrier(len(models))
        threads = [threading.Thread(target=run, args=(model, barrier)) for model in models]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        written = files_of(out)
        assert {path: written.get(path) for path in expected} == expected
        listed = [line for line in (out / MANIFEST).read_text().splitlines() if not line.startswith("#")]
        assert listed == sorted(expected)


def test_a_run_that_waits_too_long_for_the_lock_says_so(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("DERIVE_LOCK_TIMEOUT", "0.3")
    with locked(out):
        assert main(["generate", "relu", "--out", str(out), "-q"]) == 2
    assert "another derive run has been writing into" in one_error(capsys)
    assert main(["generate", "relu", "--out", str(out), "-q"]) == 0


# -- Ctrl-C --------------------------------------------------------------------------------------------

def test_ctrl_c_during_a_cold_parallel_run_stops_within_seconds(tmp_path):
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "derive.cli", "generate", "--out", str(out), "--no-cache", "--jobs", "2"],
        cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, start_new_session=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)))
    watched = Watched(process)
    try:
        watched.wait_for("derive: [1/", timeout=300)
        started = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)  # what a terminal does: the whole process group
        status, err = watched.finish(timeout=30)
        seconds = time.monotonic() - started
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert status == 130, err
    assert seconds < 5, f"took {seconds:.1f} s to stop"
    assert f"nothing was written to {out}/" in err and "operators were ready" in err, err
    assert "Traceback" not in err, err
    assert not out.exists() or files_of(out) == {}


# -- paths that cannot be written: one line, exit 2 ----------------------------------------------------

def test_out_that_is_a_file_or_inside_a_file(tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("x\n")
    assert main(["generate", "relu", "--out", str(a_file), "-q"]) == 2
    assert "is a file" in one_error(capsys)
    assert main(["generate", "relu", "--out", str(a_file / "sub"), "-q"]) == 2
    assert str(a_file) in one_error(capsys)
    out = tmp_path / "out"
    out.mkdir()
    (out / "numpy").write_text("a file where a folder is expected\n")
    assert main(["generate", "relu", "--out", str(out), "-q"]) == 2
    assert "numpy" in one_error(capsys)
    assert a_file.read_text() == "x\n" and sorted(p.name for p in out.iterdir()) == ["numpy"]


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs Linux's read-only /sys")
def test_a_folder_that_cannot_be_created(capsys):
    assert main(["generate", "relu", "--out", "/sys/derive-test-out", "-q"]) == 2
    assert "/sys/derive-test-out" in one_error(capsys)


def test_a_read_only_folder(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o500)
    if os.geteuid() == 0:  # root writes into a read-only folder: refuse the write as the kernel would

        def refused(*args, dir=None, **kwargs):
            raise PermissionError(13, "Permission denied", str(dir))

        monkeypatch.setattr(output.tempfile, "mkstemp", refused)
    try:
        assert main(["generate", "relu", "--out", str(out), "-q"]) == 2
    finally:
        out.chmod(0o700)
    assert str(out) in one_error(capsys)


def test_check_where_there_is_no_generated_output(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["check", "-q"]) == 2
    err = one_error(capsys)
    assert "no generated output" in err and "generated/" in err and str(tmp_path) in err
    assert "derive generate" in err and "--out" in err
    (tmp_path / "empty").mkdir()
    assert main(["check", "relu", "--out", "empty", "-q"]) == 2
    assert "no generated output in empty/" in one_error(capsys)
