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
Deleting the folder is always safe.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import jinja2
import sympy as sp

from . import registry, user_models
from .version import __version__
from .targets.base import template_folder
from .model import OperatorModel
from .output import is_safe

FORMAT = "derive-render-cache-2"
PACKAGE = Path(__file__).resolve().parent
NOT_ENGINE = ("ops", "bench", "adapters.py", "torch.py", "jax.py")
"""Parts of the package that no rendered file depends on (the operators are hashed per operator)."""


def default_folder() -> Path:
    """Where entries live: $DERIVE_CACHE_DIR, else $XDG_CACHE_HOME/derive, else ~/.cache/derive."""
    if os.environ.get("DERIVE_CACHE_DIR"):
        return Path(os.environ["DERIVE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "derive"


def _digest_files(digest: "hashlib._Hash", root: Path, paths: list[Path]) -> None:
    for path in sorted(paths):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")


@functools.lru_cache(maxsize=None)
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
    files = {Path(inspect.getfile(module)).resolve()}
    for value in vars(module).values():
        used = value if isinstance(value, ModuleType) else sys.modules.get(getattr(value, "__module__", "") or "")
        if used is not None and used.__name__.startswith("derive.ops.") and getattr(used, "__file__", None):
            files.add(Path(used.__file__).resolve())
    return sorted(files)


def key(name: str) -> str:
    """The cache key of operator ``name``."""
    digest = hashlib.sha256(engine_fingerprint().encode() + b"\0" + name.encode() + b"\0")
    for path in model_files(name):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(registry.get(name).source.encode())
    return digest.hexdigest()


def is_builtin(model: OperatorModel) -> bool:
    return model.source.startswith("derive/ops/") and model.name in registry.names()


def model_key(model: OperatorModel) -> str | None:
    """The cache key of a model: a built-in's, or one from its model file's text; None: not cacheable."""
    if is_builtin(model):
        return key(model.name)
    text = user_models.fingerprint(model)
    if text is None:
        return None
    digest = hashlib.sha256(engine_fingerprint().encode() + b"\0model file\0")
    for part in (model.name, model.source, text):
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
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("format") != FORMAT or entry.get("operator") != name:
            return None
        files = entry.get("files")
        if not isinstance(files, dict) or not all(is_safe(p) and isinstance(t, str) for p, t in files.items()):
            return None
        return files if entry.get("digest") == files_digest(files) else None

    def _write(self, path: Path, name: str, files: dict[str, str]) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=".entry-", dir=path.parent)
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
