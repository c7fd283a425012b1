"""The manifest of an output folder (which files derive wrote, and the SHA-256 of each) and safe reads.

``.derive-manifest`` holds one line per file, ``<sha256>  <path>``: derive removes a file only when
its bytes still hash to what it wrote.  The manifest is read only as a regular file of this user's
(never through a symbolic link, never a device or FIFO, at most ``MANIFEST_LIMIT`` bytes); a line
naming anything but a plain path in one of derive's folders is ignored.  A line without a digest
(an older derive's manifest) is kept as a record, but never enough to remove a file.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

from ..errors import OutputError

MANIFEST = ".derive-manifest"
TEMP_MARK = ".derive-tmp-"
MANIFEST_LIMIT = 4 * 2**20
"""The manifest of the whole catalog is about 20 kB; one over 4 MiB is not derive's."""
OUTPUT_LIMIT = 64 * 2**20
"""A file in the output folder larger than this is not one derive wrote (the largest is about 1 MB)."""
HEADER = ("# The files derive wrote into this folder and the SHA-256 of each; a full `derive generate`\n"
          "# removes those it no longer writes that are unchanged, and touches nothing else.  Do not edit.\n")
_LINE = re.compile(r"([0-9a-f]{64})  (.+)")

_NOFOLLOW, _NONBLOCK, _CLOEXEC = (getattr(os, name, 0) for name in ("O_NOFOLLOW", "O_NONBLOCK", "O_CLOEXEC"))
"""(Windows has none of them; it has no FIFOs, and the link is refused before the open.)"""

Records = dict[str, frozenset[str]]
"""Relative path -> the SHA-256 digests derive recorded for it (none: an older derive's line)."""


def is_safe(relative: object) -> bool:
    """A plain relative POSIX path: no absolute path, no ``..``/``.``/empty part, no backslash."""
    if not isinstance(relative, str) or not relative or "\\" in relative or "\0" in relative:
        return False
    path = PurePosixPath(relative)
    return not path.is_absolute() and all(part not in ("", ".", "..") for part in relative.split("/"))


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse(text: str, folders: Iterable[str]) -> Records:
    """The records of a manifest's text; lines that are not a plain path inside ``folders`` are ignored."""
    records: dict[str, set[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        found = _LINE.fullmatch(line)
        path = found.group(2) if found else line
        if _recordable(path, tuple(folders)):
            records.setdefault(path, set()).update([found.group(1)] if found else [])
    return {path: frozenset(digests) for path, digests in records.items()}


def _recordable(path: str, folders: tuple[str, ...]) -> bool:
    return (is_safe(path) and path.isprintable() and TEMP_MARK not in path
            and "/" in path and path.split("/", 1)[0] in folders)


def render(records: Mapping[str, Iterable[str]]) -> str:
    """The manifest's text: one line per recorded digest (a bare path where none is recorded)."""
    lines = []
    for path in sorted(records):
        lines += [f"{sha}  {path}\n" for sha in sorted(records[path])] or [f"{path}\n"]
    return HEADER + "".join(lines)


def merge(*records: Records) -> Records:
    """Every digest recorded for each path in any of ``records``."""
    merged: dict[str, frozenset[str]] = {}
    for each in records:
        for path, digests in each.items():
            merged[path] = merged.get(path, frozenset()) | digests
    return merged


def read_manifest(out: Path) -> bytes | None:
    """The manifest's bytes (None: there is none); ``OutputError`` when it is not a file to trust."""
    path = out / MANIFEST
    try:
        if os.path.islink(path):  # (O_NOFOLLOW refuses one made meanwhile, where the system has it)
            raise OutputError(_refused(path, "it is a symbolic link"))
        handle = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise OutputError(_refused(path, error.strerror or str(error))) from None
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            raise OutputError(_refused(path, "it is not a regular file"))
        if info.st_uid != os.geteuid():
            raise OutputError(_refused(path, f"it belongs to user id {info.st_uid}, not to you"))
        data = _read_up_to(handle, MANIFEST_LIMIT + 1)
    finally:
        os.close(handle)
    if len(data) > MANIFEST_LIMIT:
        raise OutputError(_refused(path, f"it is over {MANIFEST_LIMIT // 2**20} MiB"))
    return data


def _refused(path: Path, reason: str) -> str:
    return (f"refusing to use {path}: {reason}, so it is not a manifest derive wrote; "
            "remove it (derive writes a new one), or give --out an empty or new folder")


def read_regular(path: Path, limit: int = OUTPUT_LIMIT) -> bytes | None:
    """The bytes of the regular file at ``path``; None when there is none, it is a FIFO, device or
    folder, or it holds more than ``limit`` bytes (so it is no file derive wrote)."""
    try:
        handle = os.open(path, os.O_RDONLY | _NONBLOCK | _CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        raise OutputError(f"cannot read {path}: {error.strerror}") from None
    try:
        info = os.fstat(handle)
        data = _read_up_to(handle, limit + 1) if stat.S_ISREG(info.st_mode) and info.st_size <= limit else None
    finally:
        os.close(handle)
    return data if data is not None and len(data) <= limit else None


def _read_up_to(handle: int, size: int) -> bytes:
    chunks, left = [], size
    while left > 0:
        chunk = os.read(handle, min(left, 2**20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
