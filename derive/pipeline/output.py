"""The output folder: files written atomically, a manifest of derive's own files, a lock, cleanup.

Each file is written to a temporary file beside it (``.<name>.derive-tmp-*``) and renamed into
place, so a reader sees the old file or the new one, never half of one.  Every file is staged
before any is renamed: an error or Ctrl-C while staging removes the temporary files and leaves
the folder as it was; Ctrl-C during the renames is held until they are done.  ``.derive-manifest``
records the files derive wrote and the SHA-256 of each (``derive.pipeline.manifest``); a full generation
removes those it no longer writes that still hold what it wrote (a file changed since is kept, and
the run says so), and nothing else in the folder is read, copied or touched.  ``--out`` that is
``/``, the home folder, or a folder of other files without a manifest is refused.  Runs into one
folder queue on a lock that no other user can take (``derive.pipeline.lock``).  Temporary files left by a
killed run are removed by the next one.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import OutputError
from .lock import locked
from .manifest import MANIFEST, TEMP_MARK, Records, digest, is_safe, merge, parse, read_manifest, read_regular, render


class WriteInterrupted(KeyboardInterrupt):
    """Ctrl-C arrived while the staged files were renamed into place; the write was completed first."""

    def __init__(self, changed: list[str]) -> None:
        super().__init__()
        self.changed = changed


def inside(out: Path, relative: str) -> Path:
    """``out / relative``, refused (``OutputError``) unless it stays inside ``out``."""
    root = out.resolve()
    target = out / relative
    if not is_safe(relative) or relative == MANIFEST or TEMP_MARK in relative \
            or not target.resolve().is_relative_to(root):
        raise OutputError(f"refusing to write {relative!r}: it is not a plain path inside {out}/")
    return target


@dataclass(frozen=True)
class Plan:
    """The manifest before and after a run, and the files it no longer writes: removed or kept (why)."""

    text: bytes | None
    before: Records
    after: Records
    remove: list[str]
    kept: dict[str, str]


def _plan(out: Path, files: dict[str, str], full: bool) -> Plan:
    """What a run writing ``files`` does to the manifest (a partial run adds to what it records)."""
    text = read_manifest(out)
    before = _existing(out, parse(text.decode("utf-8", "replace"), _folder_names())) if text else {}
    written = {path: frozenset([digest(content.encode("utf-8"))]) for path, content in files.items()}
    if not full:
        return Plan(text, before, {**before, **written}, [], {})
    remove, kept = [], {}
    for path, digests in sorted(before.items()):
        if path in files:
            continue
        content = read_regular(out / path)
        if not digests:
            kept[path] = "the manifest, an older derive's, records no digest for it"
        elif content is None or digest(content) not in digests:
            kept[path] = "it changed since derive wrote it"
        else:
            remove.append(path)
    return Plan(text, before, written, remove, kept)


def _existing(out: Path, records: Records) -> Records:
    """The records of files that exist at their plain path (none through a symbolic link)."""
    root = out.resolve()
    return {path: digests for path, digests in records.items()
            if (out / path).resolve() == root / path and (out / path).is_file()}


def differences(out: Path, files: dict[str, str], full: bool) -> list[str]:
    """Unified diffs between ``out`` and the freshly rendered ``files``; one entry per file."""
    require_output(out)
    with locked(out, exclusive=False):
        planned = _plan(out, files, full)
        diffs = [_diff(out, relative, inside(out, relative), text) for relative, text in files.items()]
        diffs.append(_manifest_diff(out, planned))
        diffs.extend(f"{path}: stale, no operator generates it\n" for path in planned.remove)
        diffs.extend(f"{path}: stale, no operator generates it; `derive generate` keeps it ({reason})\n"
                     for path, reason in planned.kept.items())
    return [diff for diff in diffs if diff]


def _diff(out: Path, relative: str, path: Path, text: str) -> str:
    """The unified diff of one file ("" when it is current); only a regular file is read."""
    current = read_regular(path)
    if current == text.encode("utf-8"):
        return ""
    if current is None and os.path.lexists(path):
        return f"{relative} (in {out.name}/): not a regular file derive wrote; `derive generate` replaces it\n"
    return _unified(relative, out, (current or b"").decode("utf-8", "replace"), text)


def _manifest_diff(out: Path, planned: Plan) -> str:
    """The manifest's diff as derive reads it (never its raw bytes, which may be anything)."""
    text = render(planned.after)
    if planned.text == text.encode("utf-8"):
        return ""
    current = render(parse(planned.text.decode("utf-8", "replace"), _folder_names())) if planned.text else ""
    return (_unified(MANIFEST, out, current, text)
            or f"{MANIFEST} (in {out.name}/): holds lines derive ignores; `derive generate` rewrites it\n")


def _unified(relative: str, out: Path, current: str, text: str) -> str:
    return "".join(difflib.unified_diff(current.splitlines(keepends=True), text.splitlines(keepends=True),
                                        fromfile=f"{relative} (in {out.name}/)", tofile=f"{relative} (fresh render)"))


def require_output(out: Path) -> None:
    """``derive check`` of a folder with no generated output is a mistake, not an 18,000-line diff."""
    if out.is_file():
        raise OutputError(f"{out} is a file, not a folder of generated output")
    if not out.is_dir():
        where = "" if out.is_absolute() else f" in {Path.cwd()}"
        raise OutputError(f"there is no generated output here: {out}/ does not exist{where}; "
                          "run `derive generate` to create it, or give --out the folder that holds it")
    if not os.path.lexists(out / MANIFEST) and not any(f.is_dir() for f in _folders(out)):
        raise OutputError(f"there is no generated output in {out}/ (no {MANIFEST}, numpy/ or latex/); "
                          "run `derive generate` to create it, or give --out the folder that holds it")


def refuse_system_folder(out: Path) -> None:
    """``OutputError`` when ``out`` is the filesystem root or the home folder (``--out "$UNSET/"``)."""
    real = out.resolve()
    with contextlib.suppress(RuntimeError, KeyError):  # no home folder known
        if real == Path.home().resolve():
            raise OutputError(f"refusing to write into {out}: it is your home folder; "
                              "give --out an empty or new folder of its own")
    if real == Path(real.anchor):
        raise OutputError(f"refusing to write into {out}: it is the filesystem root (an unset variable "
                          "in --out?); give --out an empty or new folder of its own")


def refuse_unwritable(out: Path) -> None:
    """``OutputError`` when ``out`` cannot be a folder this user writes into, as far as can be known
    before any work: it, or the nearest folder above it that exists, is a file, or a folder this
    user may not write into (``--out afile.txt/sub``); also the root and the home folder."""
    refuse_system_folder(out)
    existing = next((path for path in (out, *out.parents) if os.path.lexists(path)), None)
    if existing is None:  # not even the working folder (removed meanwhile): mkdir will say
        return
    if not existing.is_dir():
        what = "it is" if existing == out else f"{existing} is"
        raise OutputError(f"cannot write into {out}: {what} {'a file, ' if existing.is_file() else ''}not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write into {out}: permission denied on {existing}")


def refuse_folder(out: Path) -> None:
    """``OutputError`` for an ``out`` that derive must not write into: the root, the home folder, one
    that cannot be a folder (``refuse_unwritable``), or a folder that holds files but no manifest
    (one derive did not write)."""
    refuse_unwritable(out)
    try:
        # files first: a run renames its manifest into place before any file, so this sees it
        foreign = out.is_dir() and _holds_files(out) and not os.path.lexists(out / MANIFEST)
    except OSError as error:
        raise OutputError(f"cannot read {error.filename or out}: {error.strerror}") from None
    if foreign:
        raise OutputError(f"refusing to write into {out}/: it holds files and no {MANIFEST}, so derive did "
                          "not write it; give --out an empty or new folder")


def _holds_files(out: Path) -> bool:
    """Anything in ``out`` but a killed run's temporary files (and derive's folders holding only those)."""
    folders = _folder_names()
    for entry in out.iterdir():
        if TEMP_MARK in entry.name:
            continue
        if entry.name in folders and entry.is_dir() and not entry.is_symlink() \
                and all(TEMP_MARK in inner.name for inner in entry.iterdir()):
            continue
        return True
    return False


def write(out: Path, files: dict[str, str], full: bool,
          report: Callable[[str], None] = lambda message: None) -> list[str]:
    """Write ``files`` into ``out``; a ``full`` run also removes the files derive no longer writes
    (``report`` is told of each it keeps because it changed since).

    Returns the relative paths that changed (the manifest included when it changed).
    """
    targets = {relative: inside(out, relative) for relative in files}
    refuse_system_folder(out)
    _make_folder(out)
    _recover(out)
    with locked(out, exclusive=True):
        refuse_folder(out)
        _remove_leftovers(out, {out, *(t.parent for t in targets.values()), *_folders(out)})
        planned = _plan(out, files, full)
        for path, reason in planned.kept.items():
            report(f"kept {out / path}: {reason}; it is no longer listed as derive's (remove it if it is not yours)")
        changed = [relative for relative, text in files.items()
                   if read_regular(targets[relative]) != text.encode("utf-8")]
        if planned.text != render(planned.after).encode("utf-8"):
            changed.append(MANIFEST)
        if not changed and not planned.remove:
            return []
        texts = {**{relative: files[relative] for relative in changed if relative != MANIFEST},
                 **_manifest_steps(planned)}
        staged = _stage(out, texts, {**targets, FIRST: out / MANIFEST, LAST: out / MANIFEST})
        _commit(out, staged, targets, planned.remove)
    return sorted(changed) + planned.remove


def _folder_names() -> tuple[str, ...]:
    from ..targets.render import managed_folders

    return managed_folders()


def _folders(out: Path) -> list[Path]:
    """The folders a derive run writes into (where a killed run's temporary files may be)."""
    return [out / folder for folder in _folder_names()]


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
        for written in staged.values():
            written.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise OutputError(f"cannot write into {error.filename or out}: {error.strerror}") from None
        raise
    return staged


FIRST, LAST = f"{MANIFEST} (first)", f"{MANIFEST} (last)"


def _manifest_steps(planned: Plan) -> dict[str, str]:
    """The manifest's texts to put in place before the files are renamed (``FIRST``: every digest a
    file may hold meanwhile, so a run killed half-way has recorded what it wrote) and after the
    stale files are removed (``LAST``); none that the folder already holds."""
    first, last = merge(planned.before, planned.after), planned.after
    steps = {FIRST: render(first)} if render(first).encode("utf-8") != planned.text else {}
    return {**steps, LAST: render(last)} if first != last else steps


def _commit(out: Path, staged: dict[str, Path], targets: dict[str, Path], remove: list[str]) -> None:
    """Put the first manifest in place, rename the staged files, remove the stale ones, then put the
    last manifest in place; Ctrl-C waits until the end."""
    files = [relative for relative in staged if relative not in (FIRST, LAST)]
    with interrupts_held() as held:
        try:
            if FIRST in staged:
                os.replace(staged[FIRST], out / MANIFEST)
            for relative in files:
                os.replace(staged[relative], targets[relative])
            for stale in remove:
                inside(out, stale).unlink(missing_ok=True)
            if LAST in staged:
                os.replace(staged[LAST], out / MANIFEST)
        except OSError as error:
            for temporary in staged.values():
                temporary.unlink(missing_ok=True)
            raise OutputError(f"cannot write into {error.filename or out}: {error.strerror}") from None
    if held:
        raise WriteInterrupted(sorted([*files, MANIFEST]) + remove)


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
