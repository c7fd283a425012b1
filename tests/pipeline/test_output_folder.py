"""The output folder: nothing copied or touched but derive's own files, a manifest, a lock, permissions,
leftovers of a killed run, paths that stay inside --out, Ctrl-C, and one-line errors for bad paths.
Nothing in the folder is trusted (issue 31): a manifest that is a link, a FIFO, another user's or too
large, a line naming a user's file, a flock another user holds, an --out of / or the home folder."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from helpers import GENERATED, ROOT
from helpers.commands import Watched, one_error, snapshot

from derive import api
from derive.cli import main
from derive.pipeline import output, pdf
from derive.pipeline.cache import RenderCache
from derive.pipeline.generate import Options
from derive.pipeline.output import MANIFEST, OutputError, locked, write

SMALL = ("relu", "sin", "cos", "exp", "log", "tanh", "sigmoid", "softplus")
"""Quick operators (about a second each when derived)."""


def listed(out: Path) -> dict[str, str]:
    """The manifest's records as the README documents them: ``<sha256>  <path>`` lines."""
    lines = [line for line in (out / MANIFEST).read_text().splitlines() if not line.startswith("#")]
    return {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in lines}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- nothing but derive's own files ------------------------------------------------------------------

def test_the_folder_is_not_copied_and_other_files_are_untouched(tmp_path):
    out = tmp_path / "home"
    assert main(["generate", "relu", "--out", str(out), "-q"]) == 0
    (out / "notes.txt").write_text("mine\n")
    (out / "numpy" / "mine.py").write_text("x = 1\n")
    (out / "data").mkdir()
    (out / "data" / "big.bin").write_bytes(b"\0" * 1000)
    kernel = out / "numpy" / "relu.py"
    kernel.write_text("edited\n")  # so the second run writes
    inodes = {p: p.stat().st_ino for p in (out, out / "notes.txt", out / "numpy", out / "data" / "big.bin")}
    assert main(["generate", "relu", "--out", str(out), "-q"]) == 0
    assert {p: p.stat().st_ino for p in inodes} == inodes  # the same folder and files, not copies
    assert (out / "notes.txt").read_text() == "mine\n" and (out / "numpy" / "mine.py").read_text() == "x = 1\n"
    assert kernel.read_bytes() == (GENERATED / "numpy" / "relu.py").read_bytes()
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
    assert snapshot(out) == {MANIFEST: (out / MANIFEST).read_bytes(), "numpy/a.py": b"a2\n",
                             "latex/a.tex": b"a\n", "numpy/user.py": b"mine\n"}
    assert listed(out) == {"latex/a.tex": sha256(b"a\n"), "numpy/a.py": sha256(b"a2\n")}


def test_a_partial_run_adds_to_the_manifest_and_removes_nothing(tmp_path):
    out = tmp_path / "out"
    write(out, {"numpy/a.py": "a\n"}, full=False)
    write(out, {"numpy/b.py": "b\n"}, full=False)
    assert (out / "numpy" / "a.py").exists()
    assert listed(out) == {"numpy/a.py": sha256(b"a\n"), "numpy/b.py": sha256(b"b\n")}


def test_a_crafted_manifest_cannot_make_derive_remove_files_outside(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep\n")
    (out / MANIFEST).write_text("../victim.txt\n/etc/hostname\nnumpy/../../victim.txt\n")
    write(out, {"numpy/a.py": "a\n"}, full=True)
    assert victim.read_text() == "keep\n"


def test_a_manifest_line_naming_a_users_file_removes_nothing(tmp_path):
    out = tmp_path / "out"
    write(out, {"numpy/a.py": "a\n"}, full=True)
    mine = {"__init__.py": b"# the package marker\n", ".git/config": b"[core]\n", "numpy/mine.py": b"x = 1\n",
            "latex/notes.tex": b"mine\n"}
    for path, data in mine.items():
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_bytes(data)
    lines = ["__init__.py", ".git/config", "numpy/mine.py",  # paths alone, as an older derive wrote them
             f"{sha256(mine['__init__.py'])}  __init__.py",  # the right digest, outside derive's folders
             f"{sha256(mine['.git/config'])}  .git/config",
             f"{'0' * 64}  latex/notes.tex"]  # a digest that is not the file's
    with (out / MANIFEST).open("a") as manifest:
        manifest.write("".join(f"{line}\n" for line in lines))
    assert write(out, {"numpy/a.py": "a2\n"}, full=True) == [MANIFEST, "numpy/a.py"]
    assert {path: (out / path).read_bytes() for path in mine} == mine
    assert listed(out) == {"numpy/a.py": sha256(b"a2\n")}


def test_an_older_manifest_without_digests_removes_nothing_and_is_rewritten(tmp_path):
    out = tmp_path / "out"
    write(out, {"numpy/a.py": "a\n", "numpy/b.py": "b\n"}, full=True)
    (out / MANIFEST).write_text("# The files derive wrote into this folder\nnumpy/a.py\nnumpy/b.py\n")
    assert write(out, {"numpy/a.py": "a\n"}, full=True) == [MANIFEST]
    assert (out / "numpy" / "b.py").read_text() == "b\n"
    assert listed(out) == {"numpy/a.py": sha256(b"a\n")}


def test_a_file_changed_since_derive_wrote_it_is_kept_and_the_run_says_so(tmp_path):
    out = tmp_path / "out"
    write(out, {"numpy/a.py": "a\n", "numpy/b.py": "b\n", "numpy/c.py": "c\n"}, full=True)
    (out / "numpy" / "b.py").write_text("b, edited by hand\n")
    said: list[str] = []
    assert write(out, {"numpy/a.py": "a\n"}, full=True, report=said.append) == [MANIFEST, "numpy/c.py"]
    assert (out / "numpy" / "b.py").read_text() == "b, edited by hand\n" and not (out / "numpy" / "c.py").exists()
    assert len(said) == 1 and str(out / "numpy" / "b.py") in said[0] and "changed since derive wrote it" in said[0]
    assert listed(out) == {"numpy/a.py": sha256(b"a\n")}


@contextlib.contextmanager
def hang_guard(seconds: int = 20):
    """A blocked open (a FIFO with no writer) fails the test with TimeoutError instead of hanging it."""
    def expired(number, frame):
        raise TimeoutError(f"blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


SECRET = "latex/SECRET-31-token"


def plant(manifest: Path, kind: str, secret: Path) -> str:
    """Put a manifest derive must not trust in place; returns the reason the error names."""
    manifest.unlink()
    if kind == "symlink":
        manifest.symlink_to(secret)
        return "it is a symbolic link"
    if kind == "fifo":
        os.mkfifo(manifest)
        return "it is not a regular file"
    if kind == "too large":
        manifest.write_text(f"{SECRET}\n" * 250_000)
        return "it is over 4 MiB"
    if os.geteuid() != 0:
        pytest.skip("needs root to give the manifest to another user")
    manifest.write_text(secret.read_text())
    os.chown(manifest, 65534, 65534)
    return "it belongs to user id 65534, not to you"


@pytest.mark.parametrize("kind", ["symlink", "fifo", "too large", "another user's"])
def test_a_manifest_derive_cannot_trust_is_refused_and_never_printed(kind, tmp_path, capsys):
    secret = tmp_path / "secret.txt"
    secret.write_text(f"{SECRET}\n")
    out = tmp_path / "out"
    assert main(["generate", "relu", "--out", str(out), "-q"]) == 0
    reason = plant(out / MANIFEST, kind, secret)
    capsys.readouterr()
    for command in ("check", "generate"):
        with hang_guard():
            assert main([command, "relu", "--out", str(out), "-q"]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and "SECRET" not in captured.err
        assert captured.err.count("\n") == 1 and f"{out / MANIFEST}: {reason}" in captured.err, captured.err
        assert "remove it" in captured.err
    assert secret.read_text() == f"{SECRET}\n" and os.path.lexists(out / MANIFEST)


def test_a_manifest_linked_to_dev_zero_is_refused_in_bounded_memory(tmp_path):
    out = tmp_path / "out"
    write(out, {"numpy/a.py": "a\n"}, full=False)
    (out / MANIFEST).unlink()
    (out / MANIFEST).symlink_to("/dev/zero")
    script = ("import sys\nfrom pathlib import Path\nfrom derive.pipeline.output import OutputError, differences\n"
              "try:\n    differences(Path(sys.argv[1]), {'numpy/a.py': 'a\\n'}, full=False)\n"
              "except OutputError as error:\n    sys.exit(f'refused: {error}')\n")
    limit = 1536 * 2**20  # derive's imports take under 300 MB; the old reader grew to 2.4 GB in 3 s

    def bounded():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    result = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, timeout=120, check=False,
                            preexec_fn=bounded, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert result.returncode == 1 and "refused: " in result.stderr and "symbolic link" in result.stderr, result.stderr


def test_check_and_generate_read_no_fifo_where_a_kernel_was(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["generate", "relu", "--out", str(out), "-q"]) == 0
    kernel = out / "numpy" / "relu.py"
    kernel.unlink()
    os.mkfifo(kernel)
    capsys.readouterr()
    with hang_guard():
        assert main(["check", "relu", "--out", str(out), "-q"]) == 1
    assert "numpy/relu.py (in out/): not a regular file derive wrote" in capsys.readouterr().out
    with hang_guard():
        assert main(["generate", "relu", "--out", str(out), "-q"]) == 0
    assert kernel.read_bytes() == (GENERATED / "numpy" / "relu.py").read_bytes()


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


# -- folders derive must not write into -----------------------------------------------------------------

@pytest.fixture
def no_writes_at_root(monkeypatch):
    """Nothing is made directly in / during the test (today's code, run as root, would write /numpy ...)."""
    real_mkdir, real_mkstemp = os.mkdir, tempfile.mkstemp

    def mkdir(path, *args, **kwargs):
        if Path(path).parent == Path("/"):
            raise PermissionError(13, "Permission denied (by the test)", str(path))
        return real_mkdir(path, *args, **kwargs)

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == Path("/"):
            raise PermissionError(13, "Permission denied (by the test)", str(dir))
        return real_mkstemp(*args, dir=dir, **kwargs)

    def copyfile(source, target, *args, **kwargs):
        if Path(target).parent == Path("/"):
            raise PermissionError(13, "Permission denied (by the test)", str(target))
        return real_copyfile(source, target, *args, **kwargs)

    real_copyfile = shutil.copyfile
    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(shutil, "copyfile", copyfile)


def test_out_that_is_the_root_or_the_home_folder_is_refused(tmp_path, monkeypatch, capsys, no_writes_at_root):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(pdf, "compiler", lambda: ["latexmk"])  # no TeX needed: nothing is compiled
    monkeypatch.setattr(pdf, "_compile_all", lambda *args: pytest.fail("compiled into a refused folder"))
    for out, reason in (("/", "it is the filesystem root"), (f"{home}/", "it is your home folder")):
        for command in ("generate", "pdf"):
            source = ["--source", str(GENERATED)] if command == "pdf" else []
            assert main([command, "relu", *source, "--out", out, "-q"]) == 2  # --out "$UNSET/", "$HOME/$UNSET"
            err = one_error(capsys)
            assert reason in err and "empty or new folder" in err
    assert list(home.iterdir()) == []


def test_a_folder_of_other_files_without_a_manifest_is_refused(tmp_path, capsys):
    out = tmp_path / "project"
    (out / "src").mkdir(parents=True)
    (out / "src" / "main.py").write_text("mine\n")
    (out / "README.md").write_text("mine\n")
    before = snapshot(out)
    assert main(["generate", "relu", "--out", str(out), "-q"]) == 2
    err = one_error(capsys)
    assert f"{out}/: it holds files and no {MANIFEST}" in err and "empty or new folder" in err
    with pytest.raises(OutputError, match="it holds files and no"):
        write(out, {"numpy/a.py": "a\n"}, full=False)
    assert snapshot(out) == before and sorted(p.name for p in out.iterdir()) == ["README.md", "src"]


# -- a killed run's leftovers ------------------------------------------------------------------------

def test_leftovers_of_a_killed_run_are_removed_and_ignored_by_git(tmp_path):
    out = tmp_path / "out"
    (out / "numpy").mkdir(parents=True)
    leftovers = [out / "numpy" / ".relu.py.derive-tmp-k1ll3d", out / ".derive-manifest.derive-tmp-x"]
    for path in leftovers:  # a first run killed while staging: a folder of derive's temporary files only
        path.write_text("half a file")
    assert main(["generate", "relu", "--out", str(out), "-q"]) == 0
    assert not any(path.exists() for path in leftovers)
    for path in leftovers:  # and a later run killed the same way, beside a file of the user's
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
    expected = {path: text for path, text in snapshot(tmp_path / "warm").items() if path != MANIFEST}
    errors = []

    def run(model, barrier):
        try:
            barrier.wait()
            api.write(model, out, options=options)
        except BaseException as error:
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
        written = snapshot(out)
        assert {path: written.get(path) for path in expected} == expected
        assert listed(out) == {path: sha256(data) for path, data in expected.items()}


def test_a_run_that_waits_too_long_for_the_lock_says_so(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("DERIVE_LOCK_TIMEOUT", "0.3")
    with locked(out):
        assert main(["generate", "relu", "--out", str(out), "-q"]) == 2
    assert "another derive run has been writing into" in one_error(capsys)
    assert main(["generate", "relu", "--out", str(out), "-q"]) == 0


def test_a_flock_on_the_folder_itself_does_not_block_a_run(tmp_path, monkeypatch):
    """Anyone who can read a folder can flock it; derive's lock is a file only the user can open."""
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("DERIVE_LOCK_TIMEOUT", "0.3")
    handle = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what another user can do to a folder they can read
        assert main(["generate", "relu", "--out", str(out), "-q"]) == 0
        assert main(["check", "relu", "--out", str(out), "-q"]) == 0
    finally:
        os.close(handle)


def test_the_lock_is_a_private_file_outside_the_folder(tmp_path, capsys):
    from derive.pipeline.lock import lock_path  # (here: the module is new with issue 31)

    out = tmp_path / "out"
    assert main(["generate", "relu", "--out", str(out), "-q"]) == 0
    lock = lock_path(out)
    assert not lock.is_relative_to(out) and lock.is_file() and not lock.is_symlink()
    for path, mode in ((lock, 0o600), (lock.parent, 0o700)):
        info = path.lstat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid) == (mode, os.geteuid()), path
    before = snapshot(out)
    out.chmod(0o500)  # check writes nothing into the folder it reads
    try:
        assert main(["check", "relu", "--out", str(out), "-q"]) == 0
    finally:
        out.chmod(0o700)
    assert snapshot(out) == before and sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [MANIFEST]
    elsewhere = tmp_path / "elsewhere"
    lock.unlink()
    lock.symlink_to(elsewhere)  # a lock file is opened only as a regular file of the user's
    try:
        assert main(["generate", "relu", "--out", str(out), "-q"]) == 2
        assert "cannot lock" in one_error(capsys) and not elsewhere.exists()
    finally:
        lock.unlink()


def test_check_runs_where_no_lock_can_be_had_and_generate_says_why(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    assert main(["generate", "relu", "--out", str(out), "-q"]) == 0
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(home))
    assert main(["check", "relu", "--out", str(out), "-q"]) == 0
    assert main(["generate", "relu", "--out", str(out), "-q"]) == 2
    err = one_error(capsys)
    assert f"cannot lock {out}/" in err and "XDG_RUNTIME_DIR" in err


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
    assert not out.exists() or snapshot(out) == {}


# -- paths that cannot be written: one line, exit 2 ----------------------------------------------------

def test_out_that_is_a_file_or_inside_a_file(tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("x\n")
    assert main(["generate", "relu", "--out", str(a_file), "-q"]) == 2
    assert "is a file" in one_error(capsys)
    assert main(["generate", "relu", "--out", str(a_file / "sub"), "-q"]) == 2
    assert str(a_file) in one_error(capsys)
    out = tmp_path / "out"
    assert main(["generate", "relu", "--out", str(out), "-q"]) == 0
    shutil.rmtree(out / "numpy")
    (out / "numpy").write_text("a file where a folder is expected\n")
    before = snapshot(out)
    assert main(["generate", "relu", "--out", str(out), "-q"]) == 2
    assert "numpy" in one_error(capsys)
    assert a_file.read_text() == "x\n" and snapshot(out) == before


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
