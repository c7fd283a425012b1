"""A content-keyed cache of rendered operators, so that an unchanged ``derive generate`` skips work.

The key of an operator hashes everything its files are rendered from: the text of its model
file (and of any ``derive.ops`` module that file uses; for a user's ``--model`` file, the file and
the modules it imported from its own folder, as read when it was loaded), every template, every
source file of the engine (the ``derive`` package outside ``ops/``, ``bench/`` and the framework
adapters), and the derive,
SymPy, Jinja and Python versions.  The value is the rendered files and the SHA-256 of their JSON
(``json.dumps(files, sort_keys=True)``, UTF-8).  Entries live in ``$DERIVE_CACHE_DIR``, else
``$XDG_CACHE_HOME/derive``, else ``~/.cache/derive``; they are written atomically.  An entry that
cannot be read, whose digest does not match its files (edited on disk), or that names a file
outside the output folder (an absolute path, ``..``) is treated as missing and derived again.
The digest guards against accidents, not people (anyone can recompute it): the cache is used only
where no one else can write, as ssh and pip treat their files.  The folder and each entry must be
the current user's own, not writable by group or others, and not a symlink; a folder that is not
is not used (an ``UntrustedCacheWarning`` says why, and everything is derived afresh).  Folders
derive creates are private (mode 0700).  Deleting the folder is always safe.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import inspect
import json
import os
import platform
import stat
import sys
import tempfile
import warnings
from pathlib import Path
from types import ModuleType

import jinja2
import sympy as sp

from ..errors import UntrustedCacheWarning
from ..model import OperatorModel, registry
from ..targets.base import template_folder
from ..version import __version__
from .output import is_safe

FORMAT = "derive-render-cache-2"
PACKAGE = Path(__file__).resolve().parents[1]
NOT_ENGINE = ("ops", "bench", "adapters.py", "torch.py", "jax.py")
"""Parts of the package that no rendered file depends on (the operators are hashed per operator)."""


ENTRY_LIMIT = 64 * 2**20
"""The largest entry read, in bytes (the whole catalog's documents, the largest, are under 2 MB)."""


def default_folder() -> Path:
    """Where entries live: $DERIVE_CACHE_DIR, else $XDG_CACHE_HOME/derive, else ~/.cache/derive."""
    if os.environ.get("DERIVE_CACHE_DIR"):
        return Path(os.environ["DERIVE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "derive"


def untrusted(info: os.stat_result, kind: str = "folder") -> str | None:
    """Why a file or folder with this ``lstat``/``fstat`` may not be trusted (None: it may): it must
    be a real ``kind`` (not a symlink), the current user's, and not writable by group or others."""
    wanted = stat.S_ISDIR if kind == "folder" else stat.S_ISREG
    if not wanted(info.st_mode):
        return "is a symbolic link" if stat.S_ISLNK(info.st_mode) else f"is not a {kind}"
    if os.name != "posix":  # no owners or mode bits to check
        return None
    if info.st_uid != os.geteuid():
        return f"belongs to another user (uid {info.st_uid})"
    if info.st_mode & 0o022:
        return f"can be written by other users (mode {stat.S_IMODE(info.st_mode):o}; chmod go-w fixes it)"
    return None


def private_folder(folder: Path) -> Path | None:
    """``folder`` (created with mode 0700 when missing) if only the current user can write it; else
    None, after an ``UntrustedCacheWarning`` that says why."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        problem = untrusted(os.lstat(folder))
    except OSError as error:
        problem = f"cannot be used ({error.strerror})"
    if problem is None:
        return folder
    warnings.warn(UntrustedCacheWarning(f"not using the cache folder {folder}: it {problem}; derive works without "
                                        "it (set DERIVE_CACHE_DIR to a folder of your own)"), stacklevel=2)
    return None


def read_private(path: Path, limit: int = ENTRY_LIMIT) -> bytes | None:
    """The bytes of ``path`` if it is a regular file of the current user's that no one else can write,
    read without following a symlink, and not over ``limit`` bytes; else None (a warning when the
    file exists but is another user's or writable by others)."""
    try:
        handle = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        if error.errno == errno.ELOOP:
            _distrust(path, "is a symbolic link")
        return None
    with os.fdopen(handle, "rb") as stream:
        problem = untrusted(os.fstat(stream.fileno()), "file")
        if problem is not None:
            _distrust(path, problem)
            return None
        data = stream.read(limit + 1)
    return data if len(data) <= limit else None


def _distrust(path: Path, problem: str) -> None:
    warnings.warn(UntrustedCacheWarning(f"not using the cache entry {path}: it {problem}"), stacklevel=3)


def _digest_files(digest: hashlib._Hash, root: Path, paths: list[Path]) -> None:
    for path in sorted(paths):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")


@functools.cache
def engine_fingerprint() -> str:
    """Hash of the versions, the templates and the engine's own source files."""
    digest = hashlib.sha256(FORMAT.encode())
    for version in (__version__, sp.__version__, jinja2.__version__, platform.python_version()):
        digest.update(version.encode() + b"\0")
    templates = template_folder()
    _digest_files(digest, templates, [p for p in templates.rglob("*") if p.is_file()])
    engine = [p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] not in NOT_ENGINE]
    _digest_files(digest, PACKAGE, engine)
    return digest.hexdigest()


def model_files(name: str) -> list[Path]:
    """The file defining ``name``'s model and every ``derive.ops`` module it refers to."""
    module = inspect.getmodule(registry.factory(name))
    if module is None:
        raise LookupError(f"the model {name!r} has no module")
    files = {Path(inspect.getfile(module)).resolve()}
    for value in vars(module).values():
        used = value if isinstance(value, ModuleType) else sys.modules.get(getattr(value, "__module__", "") or "")
        where = getattr(used, "__file__", None)
        if used is not None and used.__name__.startswith("derive.ops.") and where:
            files.add(Path(where).resolve())
    return sorted(files)


def key(name: str) -> str:
    """The cache key of operator ``name``."""
    digest = hashlib.sha256(engine_fingerprint().encode() + b"\0" + name.encode() + b"\0")
    for path in model_files(name):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(registry.get(name).source.encode())
    return digest.hexdigest()


def model_key(model: OperatorModel) -> str | None:
    """The cache key of a model: a built-in's, or one from its model file's real path and text (its
    ``origin``); None: not cacheable (a model built in code, an installed package's operator)."""
    if registry.is_builtin(model):
        return key(model.name)
    if not model.origin.startswith("file "):
        return None
    digest = hashlib.sha256(engine_fingerprint().encode() + b"\0model file\0")
    for part in (model.name, model.source, model.origin):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


def files_digest(files: dict[str, str]) -> str:
    """The digest an entry carries: SHA-256 of its files as sorted JSON."""
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode("utf-8")).hexdigest()


def registry_key(names: list[str]) -> str:
    """The cache key of the documents that cover every operator (the handbook)."""
    digest = hashlib.sha256(b"whole registry\0")
    for name in names:
        digest.update(key(name).encode() + b"\0")
    return digest.hexdigest()


class RenderCache:
    """Rendered files of operators, stored as JSON under their key."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_folder()

    def _entries(self) -> Path | None:
        """The folder of entries, when it and the cache folder are the user's own (``private_folder``)."""
        if private_folder(self.folder) is None:
            return None
        return private_folder(self.folder / "renders")

    def _path(self, operator: str | OperatorModel) -> Path | None:
        entry = key(operator) if isinstance(operator, str) else model_key(operator)
        return None if entry is None else self.folder / "renders" / f"{entry}.json"

    def load_registry(self, names: list[str]) -> dict[str, str] | None:
        """The cached whole-registry documents for exactly these operators, or None."""
        return self._read(self.folder / "renders" / f"{registry_key(names)}.json", "whole registry")

    def store_registry(self, names: list[str], files: dict[str, str]) -> None:
        self._write(self.folder / "renders" / f"{registry_key(names)}.json", "whole registry", files)

    def load(self, operator: str | OperatorModel) -> dict[str, str] | None:
        """The cached files of a built-in (by name) or a model, or None when there is no valid entry."""
        path = self._path(operator)
        return None if path is None else self._read(path, _name(operator))

    def store(self, operator: str | OperatorModel, files: dict[str, str]) -> None:
        """Write an entry atomically; a cache that cannot be written is skipped silently."""
        path = self._path(operator)
        if path is not None:
            self._write(path, _name(operator), files)

    def _read(self, path: Path, name: str) -> dict[str, str] | None:
        data = read_private(path) if self._entries() is not None else None
        try:
            entry = json.loads(data.decode("utf-8")) if data is not None else None
        except ValueError:
            return None
        if not isinstance(entry, dict) or entry.get("format") != FORMAT or entry.get("operator") != name:
            return None
        files = entry.get("files")
        if not isinstance(files, dict) or not all(is_safe(p) and isinstance(t, str) for p, t in files.items()):
            return None
        return files if entry.get("digest") == files_digest(files) else None

    def _write(self, path: Path, name: str, files: dict[str, str]) -> None:
        if self._entries() is None:
            return
        try:
            handle, temporary = tempfile.mkstemp(prefix=".entry-", dir=path.parent)  # mode 0600
        except OSError:
            return
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump({"format": FORMAT, "operator": name, "files": files, "digest": files_digest(files)}, stream)
            os.replace(temporary, path)
        except OSError:
            Path(temporary).unlink(missing_ok=True)


def _name(operator: str | OperatorModel) -> str:
    return operator if isinstance(operator, str) else operator.name
