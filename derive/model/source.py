"""A model written out as a model file: the text a user would write (``derive/ops/*.py`` style).

``model_source(model)`` prints sizes, indices, inputs, parameter symbols and the named intermediates
as Python names, and the output through them (``x[i] / rms * gamma[i]``), with SymPy's functions as
``sp.exp`` and derive's as imported names.  What ``derive generate --from ... --model-out`` writes;
loaded with ``--model FILE`` it builds the same model.
"""

from __future__ import annotations

import keyword
from typing import Any

import sympy as sp
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from ..errors import ModelError
from . import functions
from .operator import OperatorModel

FILE_NAMES = {"sp", "Input", "OperatorModel", "Param", "index", "size", "register"}
"""Names the file itself uses (and the derive functions it imports); a model's name cannot be one."""
DERIVE_FUNCTIONS = ("max_over", "sigmoid", "softplus")


class _Printer(StrPrinter):
    """SymPy's str printer, with ``sp.`` before SymPy's names and numbers that read back exactly."""

    def __init__(self, names: dict[sp.Basic, str]) -> None:
        super().__init__()
        self.names = names

    def _print(self, expr: Any, **kwargs: Any) -> str:
        if isinstance(expr, sp.Basic) and expr in self.names:
            return self.names[expr]
        if isinstance(expr, sp.Indexed):  # before a class's own _sympystr (a scalar input's entry)
            return self._print_Indexed(expr)
        return super()._print(expr, **kwargs)

    def _print_Function(self, expr: Any) -> str:
        name = type(expr).__name__
        prefix = "" if getattr(functions, name, None) is type(expr) else "sp."
        return f"{prefix}{name}({', '.join(self._print(a) for a in expr.args)})"

    def _print_Basic(self, expr: Any) -> str:
        return f"sp.{type(expr).__name__}({', '.join(self._print(a) for a in expr.args)})"

    _print_Max = _print_Min = _print_Piecewise = _print_Basic
    _print_Not = _print_And = _print_Or = _print_Basic

    def _print_ExprCondPair(self, expr: Any) -> str:
        return f"({self._print(expr.expr)}, {self._print(expr.cond)})"

    def _print_Sum(self, expr: Any) -> str:
        limits = ", ".join(f"({self._print(i)}, {self._print(a)}, {self._print(b)})" for i, a, b in expr.limits)
        return f"sp.Sum({self._print(expr.function)}, {limits})"

    def _print_Pow(self, expr: Any, rational: bool = False) -> str:
        if expr.exp == sp.S.Half:
            return f"sp.sqrt({self._print(expr.base)})"
        if expr.exp.is_negative and 1 / expr in self.names:
            return f"1/{self.names[1 / expr]}"
        if expr.exp == -sp.S.Half:
            return f"1/sp.sqrt({self._print(expr.base)})"
        power = PRECEDENCE["Pow"]
        return f"{self.parenthesize(expr.base, power, strict=False)}**{self.parenthesize(expr.exp, power)}"

    def _print_Relational(self, expr: Any) -> str:
        operator = {sp.Gt: ">", sp.Ge: ">=", sp.Lt: "<", sp.Le: "<="}.get(type(expr))
        if operator is None:
            return f"sp.{type(expr).__name__}({self._print(expr.lhs)}, {self._print(expr.rhs)})"
        return f"{self._print(expr.lhs)} {operator} {self._print(expr.rhs)}"

    def _print_Rational(self, expr: Any) -> str:
        return f"sp.Rational({expr.p}, {expr.q})"

    def _print_Float(self, expr: Any) -> str:
        return f"sp.Float({float(expr)!r})"

    def _print_Half(self, expr: Any) -> str:
        return "sp.Rational(1, 2)"

    def _print_Pi(self, expr: Any) -> str:
        return "sp.pi"

    def _print_Exp1(self, expr: Any) -> str:
        return "sp.E"

    def _print_Infinity(self, expr: Any) -> str:
        return "sp.oo"

    def _print_NegativeInfinity(self, expr: Any) -> str:
        return "-sp.oo"

    def _print_BooleanTrue(self, expr: Any) -> str:
        return "True"

    def _print_Idx(self, expr: Any) -> str:
        return str(expr.label)

    def _print_Indexed(self, expr: Any) -> str:
        return f"{expr.base.label}[{', '.join(self._print(i) for i in expr.indices) or '()'}]"


def model_source(model: OperatorModel, command: str = "") -> str:
    """The model file that builds ``model`` (sizes, indices, inputs and symbols named as in it)."""
    names: dict[sp.Basic, str] = {}
    lines = []
    for dim in model.dims():
        lines.append(f'    {dim} = size("{dim}")')
    indices = sorted({*model.output_indices, *(i for e in _exprs(model) for i in e.atoms(sp.Idx))},
                     key=lambda i: str(i.label))
    printer = _Printer(names)
    for idx in indices:
        lines.append(f'    {idx.label} = index("{idx.label}", {printer._print(idx.upper + 1)})')
    for inp in model.inputs:
        dims = ", ".join(str(d) for d in inp.dims) + ("," if len(inp.dims) == 1 else "")
        lines.append(f'    {inp.name} = Input("{inp.name}", ({dims}))')
    for param in model.params:
        if param.symbol is not None:
            kind = ", positive=True" if param.symbol.is_positive else ", real=True" if param.symbol.is_real else ""
            lines.append(f'    {param.symbol} = sp.Symbol("{param.symbol}"{kind})')
    for name, definition in model.where:
        lines.append(f"    {name} = {printer._print(definition)}")
        names[definition] = name
    params = [f"Param({p.name!r}, {p.default!r}, {p.symbol})" for p in model.params]
    fields = [f"name={model.name!r}", f"summary={model.summary!r}", f"category={model.category!r}",
              f"inputs={_tuple(i.name for i in model.inputs)}",
              f"params={_tuple(params)}" if model.params else "",
              f"output_indices={_tuple(str(i.label) for i in model.output_indices)}",
              f"output={printer._print(model.output)}",
              f"where={_tuple(f'({n!r}, {n})' for n, _ in model.where)}" if model.where else "",
              f"shift_invariant={_tuple(f'({n!r}, {d})' for n, d in model.shift_invariant)}"
              if model.shift_invariant else "",
              f"notes={model.notes!r}" if model.notes else ""]
    body = "\n".join(lines + ["    return OperatorModel("] + [f"        {f}," for f in fields if f] + ["    )"])
    used = sorted(n for n in DERIVE_FUNCTIONS if f"{n}(" in body)
    _check_names(model, FILE_NAMES | set(used))
    written = "Written by derive" + (f" ({_docstring(command)})" if command else "")
    header = f'"""{_docstring(model.summary)}\n\n{written}."""\n\n'
    imports = "import sympy as sp\n\n" + (f"from derive.functions import {', '.join(used)}\n" if used else "")
    imports += "from derive.model import Input, OperatorModel" + (", Param" if model.params else "")
    imports += ", index, size\nfrom derive.registry import register\n"
    return f"{header}{imports}\n\n@register\ndef {model.name}() -> OperatorModel:\n{body}\n"


def _exprs(model: OperatorModel) -> list[sp.Expr]:
    return [model.output, *(d for _, d in model.where)]


def _check_names(model: OperatorModel, taken: set[str]) -> None:
    names = [model.name, *(i.name for i in model.inputs), *(str(p.symbol) for p in model.params if p.symbol),
             *(n for n, _ in model.where), *(str(d) for d in model.dims())]
    for name in names:
        if name in taken or keyword.iskeyword(name) or not name.isidentifier():
            raise ModelError(f"the model file cannot name {name!r} (the file uses that name itself); rename it")


def _docstring(text: str) -> str:
    """Text that cannot end the docstring it is put in."""
    return text.replace("\\", "\\\\").replace('"' * 3, "'" * 3)


def _tuple(items: Any) -> str:
    """Python text of a tuple of these (already printed) items."""
    items = list(items)
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
