"""Read a LaTeX document's JSON twin back: each equation's SymPy ``srepr``, parsed, never evaluated.

The twin is written by the LaTeX target and read here, by the twin's proof (``twin.py``) and by
anyone checking a document: only the calls of ``srepr_grammar`` with literal arguments are built.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import sympy as sp
from sympy.functions.elementary.piecewise import ExprCondPair

from ..calculus.differentiate import Partial
from ..model import ScalarEntry
from ..model import functions as functions_module
from ..model.reader import Grammar, ReadError, read

SREPR_CLASSES = ("Symbol", "Dummy", "Integer", "Rational", "Float", "Add", "Mul", "Pow", "Tuple", "Idx", "Indexed",
                 "IndexedBase", "Sum", "Product", "KroneckerDelta", "Piecewise", "Max", "Min", "Abs", "sign",
                 "Heaviside", "exp", "log", "sqrt", "sin", "cos", "tan", "tanh", "sinh", "cosh", "atan", "asinh",
                 "erf", "erfc", "StrictGreaterThan", "StrictLessThan", "GreaterThan", "LessThan", "Equality",
                 "Unequality", "And", "Or", "Not")
SREPR_CONSTANTS = ("pi", "E", "oo", "zoo", "nan", "true", "false", "I")
SREPR_STRINGS = {"Symbol": 0, "Dummy": 0, "Float": 0}
"""The only calls that take a string literal (a name, or a Float's digits), and where."""
_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?", re.IGNORECASE)


def srepr_grammar(functions: Mapping[str, type] | None = None) -> Grammar:
    """What a twin's srepr may contain: SymPy's classes above, ``ExprCondPair``, the open derivative
    ``Partial``, a scalar input's ``ScalarEntry``, derive's own functions and the model's own
    ``functions`` (a user's ``sp.Function`` classes, by name), called with literals and each other; nothing else."""
    calls: dict[str, Callable[..., Any]] = {name: getattr(sp, name) for name in SREPR_CLASSES}
    calls.update(ExprCondPair=ExprCondPair, Partial=Partial, Float=_float, ScalarEntry=ScalarEntry)
    calls.update({name: value for name, value in vars(functions_module).items()
                  if isinstance(value, type) and issubclass(value, sp.Basic)})
    calls.update({name: value for name, value in (functions or {}).items() if name not in calls})
    return Grammar(names={name: getattr(sp, name) for name in SREPR_CONSTANTS}, calls=calls,
                   string_calls=SREPR_STRINGS, keywords=True, language="a twin's srepr")


def _float(digits: object, *args: object, **precision: object) -> sp.Float:
    if not isinstance(digits, (str, int)) or (isinstance(digits, str) and not _FLOAT_TEXT.fullmatch(digits)):
        raise ReadError(f"Float({digits!r}) is not a number")
    return sp.Float(digits, *args, **precision)


def load_srepr(text: str, functions: Mapping[str, type] | None = None) -> sp.Expr:
    """An expression of a twin (its ``srepr``) back as SymPy.  The text is parsed, never evaluated:
    only the calls of ``srepr_grammar`` with literal arguments are built (a ``ReadError`` otherwise).
    ``functions``: the function classes a user's model defines (``model_functions``), by name."""
    try:
        return read(text, srepr_grammar(functions))
    except ReadError as error:
        raise ReadError(f"not a twin's srepr: {error} in {text[:80]!r}") from None
