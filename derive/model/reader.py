"""Read text as SymPy objects without running it: Python's ``ast`` walked over a whitelist.

Nothing here calls ``eval``, ``exec``, ``sympify`` or ``parse_expr`` on the text.  A ``Grammar`` says
which names mean what, which functions may be called, and whether arithmetic, strings and keyword
arguments are part of the language; every other piece of Python (attributes, lambdas, comprehensions,
``__dunder__`` names ...) is a ``ReadError`` that names it.  Used for claim formulas and ``--fix``
values (``derive.proof.formula``) and for the srepr of the JSON twins (``derive.targets.latex``).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from ..errors import ReadError

MAX_EXPONENT = 1000
"""A number raised to a larger literal power is refused (SymPy would compute it exactly)."""


class SyntaxProblem(ReadError):
    """Text that is not one Python expression at all (unbalanced brackets, ``2!`` ...)."""


@dataclass(frozen=True)
class Grammar:
    names: Mapping[str, Any]
    """What each name stands for (a called name must also be in ``calls``)."""
    calls: Mapping[str, Callable[..., Any]]
    """The functions the text may call, by name."""
    unknown_name: Callable[[str], Any] | None = None
    """What a name in neither mapping becomes (``sympy.Symbol``); None: an error."""
    arithmetic: bool = False
    """+ - * / ** ^ (power, with the precedence of **), unary minus, comparisons, & |, and entries
    ``x[i, j]``."""
    constant: Callable[[object], Any] = staticmethod(lambda value: value)
    """What a literal becomes (after the checks on strings)."""
    string_calls: Mapping[str, int] = field(default_factory=dict)
    """Calls that may take a string literal, and at which positional place (e.g. ``Symbol``: 0)."""
    keywords: bool = False
    """Keyword arguments with literal bool or int values (``Symbol('n', integer=True)``)."""
    language: str = "the language"
    """What the text is, for messages ("a formula")."""


def read(text: str, grammar: Grammar) -> Any:
    """``text`` (one Python expression) built from ``grammar`` alone."""
    if grammar.arithmetic:  # no string literal may follow, so every ^ is an operator
        text = text.replace("^", "**")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        message = error.msg
        if any(word in message for word in ("never closed", "unmatched", "does not match")):
            message = "unbalanced brackets"
        raise SyntaxProblem(message) from None
    except ValueError as error:  # a NUL byte
        raise SyntaxProblem(str(error)) from None
    except (RecursionError, MemoryError):
        raise SyntaxProblem("it is nested too deeply to read") from None
    try:
        return _Walker(grammar).walk(tree.body)
    except RecursionError:
        raise ReadError("it is nested too deeply to read") from None


_BINARY = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: _power(a, b),
           ast.BitAnd: lambda a, b: sp.And(a, b), ast.BitOr: lambda a, b: sp.Or(a, b)}
_COMPARE = {ast.Lt: sp.Lt, ast.LtE: sp.Le, ast.Gt: sp.Gt, ast.GtE: sp.Ge, ast.Eq: sp.Eq, ast.NotEq: sp.Ne}


def _power(base: Any, exponent: Any) -> Any:
    if getattr(exponent, "is_number", False) and getattr(base, "is_number", False):
        if abs(sp.N(exponent)) > MAX_EXPONENT:
            raise ReadError(f"the power {base}**{exponent} is too large to compute")
    return base ** exponent


class _Walker:
    def __init__(self, grammar: Grammar) -> None:
        self.grammar = grammar

    def walk(self, node: ast.AST) -> Any:
        method = getattr(self, f"_{type(node).__name__}", None)
        arithmetic_only = type(node).__name__ in ("BinOp", "UnaryOp", "Compare", "Subscript")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and _is_number(node.operand):
            arithmetic_only = False  # a negative literal, -1
        if method is None or (arithmetic_only and not self.grammar.arithmetic):
            raise ReadError(f"Python's {type(node).__name__} is not part of {self.grammar.language} ({_source(node)})")
        return method(node)

    def _Constant(self, node: ast.Constant) -> Any:
        if isinstance(node.value, str):
            raise ReadError(f"a string ({node.value!r}) is not allowed here")
        if not isinstance(node.value, (bool, int, float)):
            raise ReadError(f"the literal {node.value!r} is not allowed here")
        return self.grammar.constant(node.value)

    def _Name(self, node: ast.Name) -> Any:
        name = node.id
        if name.startswith("__") or name.endswith("__"):
            raise ReadError(f"the name {name} is not allowed (no __dunder__ names)")
        if name in self.grammar.names:
            return self.grammar.names[name]
        if name in self.grammar.calls:
            raise ReadError(f"{name} is a function: call it, e.g. {name}(...)")
        if self.grammar.unknown_name is None:
            raise ReadError(f"unknown name {name}")
        return self.grammar.unknown_name(name)

    def _Tuple(self, node: ast.Tuple) -> tuple:
        return tuple(self.walk(element) for element in node.elts)

    def _Call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name):
            raise ReadError(f"Python's {type(node.func).__name__} is not part of {self.grammar.language} "
                            f"({_source(node.func)}); call a function by its name")
        if node.func.id not in self.grammar.calls:
            raise ReadError(f"unknown function {node.func.id}")
        name = node.func.id
        args = [self._argument(name, position, arg) for position, arg in enumerate(node.args)]
        keywords = {}
        for keyword in node.keywords:
            if not self.grammar.keywords or keyword.arg is None:
                raise ReadError(f"{name}(...) takes no keyword arguments here ({_source(keyword)})")
            value = keyword.value
            if not (isinstance(value, ast.Constant) and type(value.value) in (bool, int)):
                raise ReadError(f"the keyword {keyword.arg} of {name}(...) must be True, False or an integer")
            keywords[keyword.arg] = value.value
        try:
            return self.grammar.calls[name](*args, **keywords)
        except ReadError:
            raise
        except Exception as error:
            raise ReadError(f"{name}(...) cannot be built from these arguments: {error}") from None

    def _argument(self, function: str, position: int, node: ast.AST) -> Any:
        if isinstance(node, ast.Starred):
            raise ReadError(f"Python's Starred is not part of {self.grammar.language} ({_source(node)})")
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if self.grammar.string_calls.get(function) != position:
                raise ReadError(f"a string ({node.value!r}) is not allowed as argument {position + 1} of {function}")
            return node.value
        return self.walk(node)

    def _BinOp(self, node: ast.BinOp) -> Any:
        operation = _BINARY.get(type(node.op))
        if operation is None:
            raise ReadError(f"the operator {type(node.op).__name__} is not part of {self.grammar.language} "
                            f"({_source(node)})")
        return operation(self.walk(node.left), self.walk(node.right))

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        operand = self.walk(node.operand)
        if isinstance(node.op, ast.USub):
            return -operand
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.Invert):
            return sp.Not(operand)
        raise ReadError(f"Python's {type(node.op).__name__} is not part of {self.grammar.language} ({_source(node)})")

    def _Compare(self, node: ast.Compare) -> Any:
        if len(node.ops) != 1 or type(node.ops[0]) not in _COMPARE:
            raise ReadError(f"the comparison {_source(node)} is not part of {self.grammar.language} "
                            "(compare two values with <, <=, >, >=, == or !=)")
        return _COMPARE[type(node.ops[0])](self.walk(node.left), self.walk(node.comparators[0]))

    def _Subscript(self, node: ast.Subscript) -> Any:
        base = self.walk(node.value)
        if not isinstance(base, sp.IndexedBase):
            raise ReadError(f"{_source(node.value)} is not an array: it cannot be indexed ({_source(node)})")
        entries = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        return base[tuple(self.walk(entry) for entry in entries)]


def _is_number(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (int, float)


def _source(node: ast.AST) -> str:
    try:
        text = ast.unparse(node)
    except Exception:
        return type(node).__name__
    return text if len(text) <= 60 else text[:57] + "..."
