"""The output folder: files written atomically, a manifest of derive's own files, a lock, cleanup.

Each file is written to a temporary file beside it (``.<name>.derive-tmp-*``) and renamed into
place, so a reader sees the old file or the new one, never half of one.  Every file is staged
before any is renamed: an error or Ctrl-C while staging removes the temporary files and leaves
the folder as it was; Ctrl-C during the renames is held until they are done.  ``.derive-manifest``
lists the files derive wrote into the folder; a full generation removes those it no longer
writes, and nothing else in the folder is read, copied or touched.  Runs into one folder take an
exclusive ``flock`` on the folder itself while they write (``check`` a shared one), so concurrent
runs queue; one that waits longer than ``$DERIVE_LOCK_TIMEOUT`` seconds (default 600) stops with a
clear error.  Temporary files left by a killed run are removed by the next one.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import signal
import tempfile
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator

from .errors import OutputError  # noqa: F401  (raised here, defined with the others)

MANIFEST = ".derive-manifest"
TEMP_MARK = ".derive-tmp-"
MANIFEST_HEADER = ("# The files derive wrote into this folder; a full `derive generate` removes those it no longer\n"
                   "# writes and touches nothing else.  Generated: do not edit.\n")


class WriteInterrupted(KeyboardInterrupt):
    """Ctrl-C arrived while the staged files were renamed into place; the write was completed first."""

    def __init__(self, changed: list[str]) -> None:
        super().__init__()
        self.changed = changed


def is_safe(relative: object) -> bool:
    """A plain relative POSIX path: no absolute path, no ``..``/``.``/empty part, no backslash."""
    if not isinstance(relative, str) or not relative or "\\" in relative or "\0" in relative:
        return False
    path = PurePosixPath(relative)
    return not path.is_absolute() and all(part not in ("", ".", "..") for part in relative.split("/"))


def inside(out: Path, relative: str) -> Path:
    """``out / relative``, refused (``OutputError``) unless it stays inside ``out``."""
    root = out.resolve()
    target = out / relative
    if not is_safe(relative) or relative == MANIFEST or TEMP_MARK in relative \
            or not target.resolve().is_relative_to(root):
        raise OutputError(f"refusing to write {relative!r}: it is not a plain path inside {out}/")
    return target


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        return None
    except OSError as error:
        raise OutputError(f"cannot read {path}: {error.strerror}") from None


def manifest(out: Path) -> list[str]:
    """The files a previous run recorded as its own that still exist (unsafe entries are ignored)."""
    text = _read(out / MANIFEST) or ""
    entries = [line for line in text.splitlines() if line and not line.startswith("#")]
    root = out.resolve()
    return [e for e in entries if is_safe(e) and (out / e).resolve().is_relative_to(root) and (out / e).is_file()]


def manifest_text(paths: Iterable[str]) -> str:
    return MANIFEST_HEADER + "".join(f"{path}\n" for path in sorted(set(paths)))


def stale_files(out: Path, files: dict[str, str]) -> list[str]:
    """Files derive wrote into ``out`` before that ``files`` no longer holds."""
    return sorted(path for path in manifest(out) if path not in files)


def _owned(out: Path, files: dict[str, str], full: bool) -> set[str]:
    """What the manifest lists after this run (a partial run adds to the files already listed)."""
    return set(files) if full else {*manifest(out), *files}


def _planned(out: Path, files: dict[str, str], full: bool) -> dict[str, str]:
    """``files`` and the manifest that records them."""
    return {**files, MANIFEST: manifest_text(_owned(out, files, full))}


def differences(out: Path, files: dict[str, str], full: bool) -> list[str]:
    """Unified diffs between ``out`` and the freshly rendered ``files``; one entry per file."""
    require_output(out)
    with locked(out, exclusive=False):
        stale = stale_files(out, files) if full else []
        diffs = []
        for relative, text in _planned(out, files, full).items():
            current = _read(inside(out, relative) if relative != MANIFEST else out / MANIFEST) or ""
            if current != text:
                diffs.append("".join(difflib.unified_diff(
                    current.splitlines(keepends=True), text.splitlines(keepends=True),
                    fromfile=f"{relative} (in {out.name}/)", tofile=f"{relative} (fresh render)")) or relative)
        diffs.extend(f"{relative}: stale, no operator generates it\n" for relative in stale)
    return diffs


def require_output(out: Path) -> None:
    """``derive check`` of a folder with no generated output is a mistake, not an 18,000-line diff."""
    if out.is_file():
        raise OutputError(f"{out} is a file, not a folder of generated output")
    if not out.is_dir():
        where = "" if out.is_absolute() else f" in {Path.cwd()}"
        raise OutputError(f"there is no generated output here: {out}/ does not exist{where}; "
                          "run `derive generate` to create it, or give --out the folder that holds it")
    if not (out / MANIFEST).exists() and not any(f.is_dir() for f in _folders(out)):
        raise OutputError(f"there is no generated output in {out}/ (no {MANIFEST}, numpy/ or latex/); "
                          "run `derive generate` to create it, or give --out the folder that holds it")


def write(out: Path, files: dict[str, str], full: bool) -> list[str]:
    """Write ``files`` into ``out``; a ``full`` run also removes the files derive no longer writes.

    Returns the relative paths that changed (the manifest included when it changed).
    """
    targets = {relative: inside(out, relative) for relative in files}
    _make_folder(out)
    _recover(out)
    with locked(out, exclusive=True):
        _remove_leftovers(out, {out, *(t.parent for t in targets.values()), *_folders(out)})
        remove = stale_files(out, files) if full else []
        owned = _owned(out, files, full)
        planned = {**files, MANIFEST: manifest_text(owned)}
        targets[MANIFEST] = out / MANIFEST
        changed = [relative for relative, text in planned.items() if _read(targets[relative]) != text]
        if not changed and not remove:
            return []
        staged = _stage(out, {relative: planned[relative] for relative in changed}, targets)
        _commit(out, staged, targets, remove, owned)
    return sorted(changed) + remove


def _folders(out: Path) -> list[Path]:
    """The folders a derive run writes into (where a killed run's temporary files may be)."""
    from .targets.render import managed_folders

    return [out / folder for folder in managed_folders()]


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot write into {folder}: it is a file, not a folder") from None
    except OSError as error:
        raise OutputError(f"cannot create {error.filename or folder}: {error.strerror}") from None


def _stage(out: Path, texts: dict[str, str], targets: dict[str, Path]) -> dict[str, Path]:
    """relative -> temporary file holding its new text, beside its target; removed again on any error."""
    staged: dict[str, Path] = {}
    umask = _umask()
    try:
        for relative, text in texts.items():
            target = targets[relative]
            _make_folder(target.parent)
            handle, temporary = tempfile.mkstemp(prefix=f".{target.name}{TEMP_MARK}", dir=target.parent)
            staged[relative] = Path(temporary)
            with os.fdopen(handle, "wb") as stream:
                stream.write(text.encode("utf-8"))
                mode = target.stat().st_mode & 0o7777 if target.is_file() else 0o666 & ~umask
                os.fchmod(stream.fileno(), mode)
    except BaseException as error:
        for temporary in staged.values():
            temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise OutputError(f"cannot write into {error.filename or out}: {error.strerror}") from None
        raise
    return staged


def _commit(out: Path, staged: dict[str, Path], targets: dict[str, Path], remove: list[str],
            owned: set[str]) -> None:
    """Rename the staged files into place, then remove the stale ones; Ctrl-C waits until the end.

    The manifest goes first, so a run killed half-way has recorded every file it may have written;
    when files are to be removed it first lists them too, and is cut down to ``owned`` last.
    """
    files = [relative for relative in staged if relative != MANIFEST]
    with interrupts_held() as held:
        try:
            if remove:  # then the manifest changes too: list both old and new files while both may exist
                _replace(out / MANIFEST, manifest_text({*manifest(out), *owned, *remove}))
            elif MANIFEST in staged:
                os.replace(staged[MANIFEST], out / MANIFEST)
            for relative in files:
                os.replace(staged[relative], targets[relative])
            for stale in remove:
                inside(out, stale).unlink(missing_ok=True)
            if remove:
                os.replace(staged[MANIFEST], out / MANIFEST)
        except OSError as error:
            for temporary in staged.values():
                temporary.unlink(missing_ok=True)
            raise OutputError(f"cannot write into {error.filename or out}: {error.strerror}") from None
    if held:
        raise WriteInterrupted(sorted(staged) + remove)


def _replace(path: Path, text: str) -> None:
    """Write one file atomically (a temporary file beside it, then a rename)."""
    staged = _stage(path.parent, {path.name: text}, {path.name: path})
    os.replace(staged[path.name], path)


@contextlib.contextmanager
def interrupts_held() -> Iterator[list[int]]:
    """Hold SIGINT (Ctrl-C) until the block ends; the yielded list is non-empty if one came."""
    held: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    previous = signal.signal(signal.SIGINT, lambda number, frame: held.append(number))
    try:
        yield held
    finally:
        signal.signal(signal.SIGINT, previous)


def _umask() -> int:
    """The process's umask (read from /proc where it can be, since setting it races with threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _remove_leftovers(out: Path, folders: Iterable[Path]) -> None:
    """Temporary files of a run that was killed (this run holds the lock, so no other is writing)."""
    for folder in folders:
        if folder.is_dir():
            for path in folder.glob(f".*{TEMP_MARK}*"):
                if path.is_file() and not path.is_symlink():
                    path.unlink(missing_ok=True)


def _recover(out: Path) -> None:
    """Put back a folder that derive 0.x moved aside (``.<out>.old``) and was killed before restoring."""
    backup = out.parent / f".{out.name}.old"
    if backup.is_dir() and out.is_dir() and not any(out.iterdir()):
        out.rmdir()
        os.replace(backup, out)


def lock_timeout() -> float:
    try:
        return float(os.environ.get("DERIVE_LOCK_TIMEOUT", "600"))
    except ValueError:
        return 600.0


@contextlib.contextmanager
def locked(out: Path, exclusive: bool = True) -> Iterator[None]:
    """Hold ``flock`` on the folder ``out`` (exclusive to write, shared to read); wait for another run."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): runs are not serialised
        yield
        return
    try:
        handle = os.open(out, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as error:
        raise OutputError(f"cannot open {out}: {error.strerror}") from None
    try:
        mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        timeout = lock_timeout()
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, mode)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise OutputError(f"another derive run has been writing into {out}/ for over {timeout:g} s "
                                      "(set DERIVE_LOCK_TIMEOUT to wait longer)") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(handle)
