"""Load a user's model file: a Python file of ``@register`` factories, written like ``derive/ops/*.py``.

The file is executed with ``registry.collecting()``, so its operators are returned to the caller and
never join the built-in registry.  Every failure (missing file, syntax error, an exception in the
file or in a factory) becomes one ``ModelFileError`` that names the file and line.  Each model's
``origin`` is the file's real path and a digest of what it was built from (the file's text as it was
executed and the modules it imported from its own folder): what its kernels and render-cache
entries are keyed by.  The modules a file imports from its folder are imported afresh for it and
dropped from ``sys.modules`` after, so two model folders with a ``helper.py`` each get their own.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import itertools
import sys
import traceback
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from ..budget import step
from ..errors import ModelFileError
from . import registry
from .operator import OperatorModel

_COUNTER = itertools.count()


def load_models(path: str | Path) -> dict[str, OperatorModel]:
    """Name -> model for every operator the file registers, in the file's order."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    if path.suffix != ".py":
        raise ModelFileError(f"{path}: a model file is a Python file (.py)")
    text = path.read_bytes()
    with step(f"loading {path.name}"):  # the file's own code may take long (SymPy building its expressions)
        with registry.collecting() as factories, _importable_from(path.parent), _fresh_neighbours(path.parent):
            _execute(path, text)
            origin = registry.file_origin(path, _digest(path, text))
        if not factories:
            raise ModelFileError(f"{path}: registers no operator; decorate a function returning an "
                                 "OperatorModel with @register (from derive.registry import register)")
        models: dict[str, OperatorModel] = {}
        for name, factory in factories.items():
            try:
                model = registry.instantiate(factory, path.name, origin=origin)
            except Exception as error:  # the user's factory may raise anything: report it with its line
                raise ModelFileError(f"{_where(path, error)}: {name}() failed: {type(error).__name__}: "
                                     f"{error}") from None
            models[model.name] = model
    return models


def _digest(path: Path, text: bytes) -> str:
    """The model file's text and every loaded module from its folder (the neighbours it may import)."""
    folder = path.resolve().parent
    prefixes = (str(folder), str(path.absolute().parent))  # a cheap test first: thousands of modules
    digest = hashlib.sha256(path.name.encode() + b"\0" + text + b"\0")
    neighbours = set()
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and not name.startswith("derive") and (file.startswith(prefixes) or not Path(file).is_absolute()) \
                and Path(file).resolve().is_relative_to(folder):
            neighbours.add(Path(file).resolve())
    for neighbour in sorted(neighbours - {path.resolve()}):
        try:
            digest.update(neighbour.relative_to(folder).as_posix().encode() + b"\0" + neighbour.read_bytes() + b"\0")
        except OSError:
            continue
    return digest.hexdigest()


def load_model(path: str | Path, name: str | None = None) -> OperatorModel:
    """The operator ``name`` from the file, or its only operator when ``name`` is None."""
    models = load_models(path)
    if name is None:
        if len(models) > 1:
            raise ModelFileError(f"{path} defines {len(models)} operators ({', '.join(models)}); name one")
        return next(iter(models.values()))
    if name not in models:
        raise registry.unknown(name, list(models))
    return models[name]


def load_traced(path: str | Path, function: str, shapes: Mapping[str, Sequence[str]]) -> OperatorModel:
    """The model traced from ``function`` of the Python file ``path`` (``derive.model.trace``): the
    file runs as a model file does (its own folder importable, nothing registered for good)."""
    from .trace import trace

    path = Path(path)
    if not path.is_file() or path.suffix != ".py":
        raise ModelFileError(f"{path}: no such Python file (give FILE.py:FUNCTION)")
    text = path.read_bytes()
    with step(f"loading {path.name}"):
        with registry.collecting(), _importable_from(path.parent), _fresh_neighbours(path.parent):
            namespace = _execute(path, text)
            traced = f"\0traced {function} {sorted((k, tuple(v)) for k, v in shapes.items())!r}".encode()
            origin = registry.file_origin(path, _digest(path, text + traced))
            fn = namespace.get(function)
            if not inspect.isfunction(fn):
                known = [n for n, v in namespace.items()
                         if inspect.isfunction(v) and v.__module__ == namespace["__name__"]]
                raise ModelFileError(f"{path}: no function {function!r}" + (f" (its functions: {', '.join(known)})"
                                                                              if known else ""))
            return trace(fn, shapes, origin=origin)


def _execute(path: Path, text: bytes) -> dict:
    """Run the file's ``text`` (the bytes just read and digested, never a cached bytecode file); its globals."""
    module_name = f"_derive_user_model_{next(_COUNTER)}_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None  # a file location always gives a spec
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        exec(compile(text, str(path), "exec", dont_inherit=True), module.__dict__)  # the user's own model file
        return module.__dict__
    except SyntaxError as error:
        raise ModelFileError(f"{path}:{error.lineno}: syntax error: {error.msg}") from None
    except Exception as error:  # anything the file raises while it runs
        raise ModelFileError(f"{_where(path, error)}: {type(error).__name__}: {error}") from None
    finally:
        sys.modules.pop(module_name, None)


def _where(path: Path, error: BaseException) -> str:
    """``path:line`` of the deepest traceback frame inside ``path`` (``path`` alone if none)."""
    target = path.resolve()
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__)
             if Path(frame.filename).resolve() == target]
    return f"{path}:{lines[-1]}" if lines else str(path)


@contextlib.contextmanager
def _fresh_neighbours(folder: Path) -> Iterator[None]:
    """Modules imported from ``folder`` while the block runs are dropped from ``sys.modules`` after it
    (the model keeps them through its functions' globals), so that the next model file imports its
    own neighbours, not those of another folder with the same module names."""
    before = set(sys.modules)
    try:
        yield
    finally:
        root = folder.resolve()
        for name in set(sys.modules) - before:
            file = getattr(sys.modules.get(name), "__file__", None)
            if file and Path(file).resolve().is_relative_to(root):
                sys.modules.pop(name, None)


@contextlib.contextmanager
def _importable_from(folder: Path) -> Iterator[None]:
    """Let the model file import its neighbours while it runs."""
    entry = str(folder.resolve())
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        sys.path.remove(entry)
