"""The operator registry: ``@register`` beside each model, lookup by name with helpful errors.

Built-in operators live in ``derive/ops``; installed packages add operators through the entry-point
group ``derive.operators`` (``name = "module:factory"``).  ``names()`` is the built-ins only (what a
full ``derive generate`` writes); ``get``/``build`` also find installed operators, and ``rebuild``
makes a variant of any model, a user's too.  ``collecting()`` lets a user's model file register its
operators into a private table instead of the built-in one.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ..errors import PluginError, UnknownOperatorError
from .operator import ModelFactory, OperatorModel

ENTRY_POINT_GROUP = "derive.operators"

_FACTORIES: dict[str, ModelFactory] = {}
_COLLECTORS: list[dict[str, ModelFactory]] = []
_ORIGINS: dict[tuple[str, str], ModelFactory] = {}
"""(name, origin) -> the factory that built it, so ``rebuild`` can make its variants."""
BUILTIN = "builtin"
"""The ``origin`` of a built-in operator's model."""


def register(factory: ModelFactory) -> ModelFactory:
    """Register a model factory under its function name (``def rmsnorm() -> OperatorModel``)."""
    table = _COLLECTORS[-1] if _COLLECTORS else _FACTORIES
    table[factory.__name__] = factory
    return factory


@contextlib.contextmanager
def collecting() -> Iterator[dict[str, ModelFactory]]:
    """Within this block ``@register`` fills the yielded table, not the built-in registry."""
    table: dict[str, ModelFactory] = {}
    _COLLECTORS.append(table)
    try:
        yield table
    finally:
        _COLLECTORS.remove(table)


def names() -> tuple[str, ...]:
    """The built-in operators, in their fixed order."""
    return tuple(_FACTORIES)


@dataclass(frozen=True)
class Plugin:
    """An operator an installed package declares in the ``derive.operators`` entry-point group."""

    name: str
    value: str
    distribution: str

    def factory(self) -> ModelFactory:
        with collecting():  # its module's @register must not add it to the built-ins
            entry = metadata.EntryPoint(self.name, self.value, ENTRY_POINT_GROUP)
            try:
                loaded = entry.load()
            except Exception as error:  # any import failure of a third-party module
                raise PluginError(f"operator {self.name!r} from {self.distribution} ({self.value}) "
                                  f"failed to load: {type(error).__name__}: {error}") from None
        if not callable(loaded):
            raise PluginError(f"operator {self.name!r} from {self.distribution}: {self.value} is not a function")
        return loaded


def plugins() -> tuple[Plugin, ...]:
    """Operators declared by installed packages (built-in names take precedence), sorted by name."""
    found = {}
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry.dist.name if entry.dist is not None else "an installed package"
        if entry.name not in _FACTORIES and entry.name not in found:
            found[entry.name] = Plugin(entry.name, entry.value, dist)
    return tuple(found[name] for name in sorted(found))


def factory(name: str) -> ModelFactory:
    """The factory of the built-in operator ``name``."""
    if name not in _FACTORIES:
        raise unknown(name, list(_FACTORIES))
    return _FACTORIES[name]


def get(name: str) -> OperatorModel:
    """Build the model registered as ``name`` (with its default parameters)."""
    return build(name)


def build(name: str, **choices: Any) -> OperatorModel:
    """Build the model registered as ``name`` (built-in first, then installed packages), passing
    formula-selecting parameters to its factory."""
    if name in _FACTORIES:
        try:
            return instantiate(_FACTORIES[name], origin=BUILTIN, **choices)
        except TypeError as error:  # a factory that returned something else
            raise UnknownOperatorError(f"operator {name!r}: {error}") from None
    for plugin in plugins():
        if plugin.name == name:
            source = f"{plugin.distribution} (entry point {plugin.name})"
            try:
                model = instantiate(plugin.factory(), source, origin=f"entry point {plugin.value} of "
                                    f"{plugin.distribution}", **choices)
            except PluginError:
                raise
            except Exception as error:  # a third-party factory may raise anything
                raise PluginError(f"operator {name!r} from {plugin.distribution}: its factory failed: "
                                  f"{type(error).__name__}: {error}") from None
            if model.name != name:
                raise PluginError(f"entry point {name!r} of {plugin.distribution} builds an operator "
                                  f"named {model.name!r}; the two names must agree")
            return model
    raise unknown(name, [*_FACTORIES, *(p.name for p in plugins())])


def rebuild(model: OperatorModel, **choices: object) -> OperatorModel:
    """The same operator built again by the factory that made ``model`` (built-in, installed or
    from a user's file), with other formula-selecting parameters."""
    factory = _ORIGINS.get((model.name, model.origin))
    if factory is None:
        return build(model.name, **choices)
    return instantiate(factory, model.source, origin=model.origin, **choices)


def unknown(name: str, known: list[str]) -> UnknownOperatorError:
    """The error for an unknown operator name, with the closest known names."""
    close = difflib.get_close_matches(name, known, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return UnknownOperatorError(f"unknown operator {name!r}.{hint} Known operators: {', '.join(known)}.")


def instantiate(factory: ModelFactory, source: str | None = None, *, origin: str = "",
                **choices: Any) -> OperatorModel:
    """Call a factory; the model's ``source`` names its file when the model does not say, and its
    ``origin`` is the loader's (``BUILTIN``, an entry point, ``file_origin``), whatever the model says."""
    model = factory(**choices)
    if not isinstance(model, OperatorModel):
        raise TypeError(f"{factory.__name__}() returned {type(model).__name__}, not an OperatorModel")
    if not model.source:
        object.__setattr__(model, "source", source or display_path(Path(inspect.getfile(factory))))
    object.__setattr__(model, "origin", origin)
    _ORIGINS[(model.name, origin)] = factory
    return model


def file_origin(path: Path, digest: str) -> str:
    """The ``origin`` of a model loaded from a file: its real path and the digest of what it was
    built from (``user_models``)."""
    return f"file {path.resolve()} sha256:{digest}"


def is_builtin(model: OperatorModel) -> bool:
    """Built by the built-in registry (not merely named like a built-in, nor claiming its source)."""
    return model.origin == BUILTIN and model.name in names()


def display_path(path: Path) -> str:
    """A machine-independent name for a model file (relative to the package's parent)."""
    package_root = Path(__file__).resolve().parents[2]
    try:
        return path.resolve().relative_to(package_root).as_posix()
    except ValueError:
        return path.name
