"""The operator registry: ``@register`` beside each model, lookup by name with helpful errors."""

from __future__ import annotations

import difflib
import inspect
from pathlib import Path

from .model import ModelFactory, OperatorModel

_FACTORIES: dict[str, ModelFactory] = {}


class UnknownOperatorError(KeyError):
    """An operator name that no model registers."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def register(factory: ModelFactory) -> ModelFactory:
    """Register a model factory under its function name (``def rmsnorm() -> OperatorModel``)."""
    _FACTORIES[factory.__name__] = factory
    return factory


def names() -> tuple[str, ...]:
    _load_builtin()
    return tuple(_FACTORIES)


def factory(name: str) -> ModelFactory:
    """The factory registered as ``name``."""
    _load_builtin()
    if name not in _FACTORIES:
        close = difflib.get_close_matches(name, _FACTORIES, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownOperatorError(
            f"unknown operator {name!r}.{hint} Known operators: {', '.join(_FACTORIES)}."
        )
    return _FACTORIES[name]


def get(name: str) -> OperatorModel:
    """Build the model registered as ``name``."""
    make = factory(name)
    model = make()
    if not model.source:
        source = Path(inspect.getfile(make))
        object.__setattr__(model, "source", _display_path(source))
    return model


def _display_path(path: Path) -> str:
    """A machine-independent name for a model file (relative to the package's parent)."""
    package_root = Path(__file__).resolve().parent.parent
    try:
        return path.resolve().relative_to(package_root).as_posix()
    except ValueError:
        return path.name


def _load_builtin() -> None:
    from . import ops  # noqa: F401  (importing registers the built-in operators)
