"""Load a user's model file: a Python file of ``@register`` factories, written like ``derive/ops/*.py``.

The file is executed with ``registry.collecting()``, so its operators are returned to the caller and
never join the built-in registry.  Every failure (missing file, syntax error, an exception in the
file or in a factory) becomes one ``ModelFileError`` that names the file and line.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import sys
import traceback
from pathlib import Path
from typing import Iterator

from . import registry
from .model import OperatorModel

_COUNTER = itertools.count()


class ModelFileError(ValueError):
    """A model file that cannot be loaded; the message names the file and, when known, the line."""


def load_models(path: str | Path) -> dict[str, OperatorModel]:
    """Name -> model for every operator the file registers, in the file's order."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    if path.suffix != ".py":
        raise ModelFileError(f"{path}: a model file is a Python file (.py)")
    with registry.collecting() as factories, _importable_from(path.parent):
        _execute(path)
    if not factories:
        raise ModelFileError(f"{path}: registers no operator; decorate a function returning an "
                             "OperatorModel with @register (from derive.registry import register)")
    models: dict[str, OperatorModel] = {}
    for name, factory in factories.items():
        try:
            model = registry.instantiate(factory, path.name)
        except Exception as error:  # the user's factory may raise anything: report it with its line
            raise ModelFileError(f"{_where(path, error)}: {name}() failed: {type(error).__name__}: {error}") from None
        models[model.name] = model
    return models


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


def _execute(path: Path) -> None:
    module_name = f"_derive_user_model_{next(_COUNTER)}_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
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
def _importable_from(folder: Path) -> Iterator[None]:
    """Let the model file import its neighbours while it runs."""
    entry = str(folder.resolve())
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        sys.path.remove(entry)
