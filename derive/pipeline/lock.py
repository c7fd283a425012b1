"""The lock of an output folder: runs into one folder queue, and no other user can block them.

A run holds ``flock`` on a lock file while it writes (``check`` a shared one while it reads).  The
lock file is the user's own: mode 0600, in a folder of theirs (0700) under ``$XDG_RUNTIME_DIR``,
else ``$XDG_CACHE_HOME`` or ``~/.cache``, named after the output folder's real path, so another
user who can read the output folder cannot take it.  A run that waits longer than
``$DERIVE_LOCK_TIMEOUT`` seconds (default 600) stops with a clear error.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import OutputError
from .manifest import digest


def lock_timeout() -> float:
    try:
        return float(os.environ.get("DERIVE_LOCK_TIMEOUT", "600"))
    except ValueError:
        return 600.0


def lock_path(out: Path) -> Path:
    """The lock file of the folder ``out``: named after its real path, in a folder of the user's own."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    cache = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(runtime) if os.path.isabs(runtime) else Path(cache) if os.path.isabs(cache) else Path.home() / ".cache"
    return base / "derive-locks" / f"{digest(os.fsencode(out.resolve()))[:32]}.lock"


def _open_lock(out: Path, exclusive: bool) -> int | None:
    """The lock file's descriptor: a regular file of the user's (mode 0600) in a folder of the user's
    (0700), so no other user can open it to block a run.  A ``check`` where none can be had runs
    without one (None)."""
    try:
        path = lock_path(out)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _require_private(path.parent, os.lstat(path.parent), stat.S_ISDIR)
        handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except (OSError, RuntimeError, OutputError) as error:  # RuntimeError: no home folder
        if not exclusive:
            return None
        reason = f"{error.filename}: {error.strerror}" if isinstance(error, OSError) else str(error)
        raise OutputError(f"cannot lock {out}/ ({reason}); set XDG_RUNTIME_DIR to a folder of your own") from None
    try:
        _require_private(path, os.fstat(handle), stat.S_ISREG)
    except OutputError:
        os.close(handle)
        raise
    return handle


def _require_private(path: Path, info: os.stat_result, kind: Callable[[int], bool]) -> None:
    """``OutputError`` unless ``path`` is of the ``kind`` expected, the user's, and theirs alone."""
    if not kind(info.st_mode) or info.st_uid != os.geteuid():
        raise OutputError(f"refusing the lock {path}: it is not a {'folder' if kind is stat.S_ISDIR else 'file'} "
                          "of yours; remove it")
    if info.st_mode & 0o077:
        os.chmod(path, stat.S_IMODE(info.st_mode) & 0o700)


@contextlib.contextmanager
def locked(out: Path, exclusive: bool = True) -> Iterator[None]:
    """Hold ``flock`` on ``out``'s lock file (exclusive to write, shared to read); wait for another run."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): runs are not serialised
        yield
        return
    handle = _open_lock(out, exclusive)
    if handle is None:
        yield
        return
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
