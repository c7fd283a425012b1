"""The Array API namespace of symbolic arrays: what ``xp = array_namespace(x)`` gives a traced function.

Its functions are those of ``operations.py`` under the standard's names (``xp.exp``, ``xp.sum(x, axis=-1)``,
``xp.var(x, correction=1)``, ``xp.linalg.vector_norm``); any other name is refused with the name.
"""

from __future__ import annotations

import math
from typing import Any

from . import arrays
from .arrays import Refused, Sym
from .operations import FUNCTIONS, UFUNCS, clip, norm, vecdot

ARRAY_API_NAMES = {"pow": "power", "atan": "arctan", "bitwise_invert": "logical_not"}


class Namespace:
    """A module-like object: the functions a traced function may call, by name."""

    def __init__(self, name: str, functions: dict[str, Any]) -> None:
        self.__name__ = name
        self._functions = functions

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name in self._functions:
            return self._functions[name]
        raise Refused(f"{self.__name__}.{name}")


def _asarray(value: Any, **options: Any) -> Any:
    if isinstance(value, Sym):
        return value
    raise Refused("xp.asarray of numbers (write the number itself: 2.0 * x)")


def _vector_norm(x: Any, axis: Any = None, keepdims: bool = False, ord: Any = 2) -> Any:
    return norm(x, ord, axis, keepdims)


_FUNCTIONS: dict[str, Any] = {
    **UFUNCS, **FUNCTIONS,
    **{name: UFUNCS[numpy_name] for name, numpy_name in ARRAY_API_NAMES.items()},
    "asarray": _asarray, "newaxis": None, "pi": math.pi, "e": math.e, "inf": math.inf,
    "linalg": Namespace("xp.linalg", {"vector_norm": _vector_norm, "matmul": arrays.matmul,
                                      "vecdot": vecdot}),
    "clip": lambda x, /, min=None, max=None: clip(x, min, max),
}
NAMESPACE = Namespace("xp", _FUNCTIONS)
Sym.namespace = NAMESPACE
