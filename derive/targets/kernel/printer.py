"""Print index expressions as array code over a fixed frame of core axes, in any array namespace.

Every printed array has the operator's core axes (the *frame*, one axis per size symbol) as its
trailing axes, size one where the expression does not depend on that axis (all of them, so that
leading batch axes are never mistaken for core axes).  An ``Indexed`` input is placed onto the
frame by its index sizes.  Two indices over the same size in one array would be an n x n
intermediate, which is refused.  ``FramePrinter`` holds what the NumPy and the Array API printers
print alike; each prints its own functions and reductions.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from ...calculus.indices import free_indices
from ...errors import LoweringError
from ...model import dim_of


@dataclass(frozen=True)
class ArraySpec:
    """A named array and the size symbol of each of its core axes, in order."""

    name: str
    dims: tuple[sp.Expr, ...]
    frame_form: bool = False
    """A kernel temporary, already laid out on the frame (printed as it is)."""


def check_separable(expr: sp.Expr) -> None:
    """Refuse ``expr`` if two of its free indices run over one size (an n x n array)."""
    dims = [dim_of(i) for i in free_indices(expr)]
    for dim in set(dims):
        if dims.count(dim) > 1:
            clash = sorted(str(i) for i in free_indices(expr) if dim_of(i) == dim)
            raise LoweringError(
                f"{expr} depends on indices {', '.join(clash)} of one size {dim}: "
                "printing it would build an n x n array"
            )


class FramePrinter(NumPyPrinter):
    """Array code for index expressions over the frame ``frame``, calling the module ``namespace``."""

    in_place = True
    """The view builder lowers the schedule in place (``schedule/inplace.py``) for this printer."""
    namespace = "np"
    """The module the printed calls go through (the Array API printer's is ``xp``)."""

    def __init__(self, frame: tuple[sp.Expr, ...], arrays: dict[str, ArraySpec],
                 names: dict[sp.Symbol, str]) -> None:
        super().__init__({"fully_qualified_modules": True, "allow_unknown_functions": False})
        self.frame = frame
        self.arrays = arrays
        self.names = names
        self.imports: set[str] = set()

    def declare(self, symbol: sp.Symbol, expr: sp.Expr) -> None:
        """A kernel temporary ``symbol = expr``, laid out on the frame (printed by its name)."""
        self.arrays[str(symbol)] = ArraySpec(str(symbol), (), frame_form=True)

    def shifted(self, name: str, axis: int) -> str:
        """Code for input ``name`` minus its maximum along ``axis``."""
        return f"{name} - {self.namespace}.max({name}, axis={axis}, keepdims=True)"

    def print_into(self, expr: sp.Expr, out: str) -> str:
        """``expr`` computed into the existing array ``out`` (a printer with ``in_place`` only)."""
        raise LoweringError(f"the {self.namespace} printer computes nothing into an existing array")

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return self.names.get(expr, super()._print_Symbol(expr))

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        if expr.exp == -1:
            return f"1/{self.parenthesize(expr.base, sp.printing.precedence.PRECEDENCE['Pow'])}"
        return super()._print_Pow(expr, rational=rational)

    def _print_Min(self, expr: sp.Min) -> str:
        return self._extremum(f"{self.namespace}.minimum", expr)

    def _print_Max(self, expr: sp.Max) -> str:
        return self._extremum(f"{self.namespace}.maximum", expr)

    def _extremum(self, function: str, expr: sp.Expr) -> str:
        """``function`` folded over the arguments, two at a time (min, max; and, or)."""
        code = self._print(expr.args[0])
        for arg in expr.args[1:]:
            code = f"{function}({code}, {self._print(arg)})"
        return code

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        *branches, (last, condition) = expr.args
        if condition != sp.true:
            raise LoweringError(f"{expr} has no otherwise-branch")
        code = self._print(last)
        for value, condition in reversed(branches):
            code = f"{self.namespace}.where({self._print(condition)}, {self._print(value)}, {code})"
        return code

    def _print_Mul(self, expr: sp.Mul) -> str:
        """Factors spanning fewer axes are multiplied together first, then once into the rest.

        -t0*x*S/t1**(3/2) is printed x*(-t0*S/t1**(3/2)): one pass over the full-size x, not three.
        """
        factors = sp.Mul.make_args(expr)
        spans = free_indices(expr)
        small = [f for f in factors if free_indices(f) != spans]
        large = [f for f in factors if free_indices(f) == spans]
        if not large or len(small) < 2:
            return super()._print_Mul(expr)
        first = self.parenthesize(sp.Mul(*large), sp.printing.precedence.PRECEDENCE["Mul"])
        return f"{first}*({self._print(sp.Mul(*small))})"

    # -- placement on the frame ---------------------------------------------------------------
    def axis(self, dim: sp.Expr) -> int:
        """The (negative) axis of ``dim`` in the frame."""
        return self.frame.index(dim) - len(self.frame)

    def check_separable(self, expr: sp.Expr) -> None:
        check_separable(expr)

    def place(self, name: str, dims: tuple[sp.Expr, ...]) -> str:
        """Code that views array ``name`` (trailing core axes of sizes ``dims``) on the frame."""
        positions = [self.frame.index(d) for d in dims]
        code, count = name, len(dims)
        if positions != sorted(positions):
            order = sorted(range(count), key=lambda a: positions[a])
            source = ", ".join(str(a - count) for a in order)
            target = ", ".join(str(a - count) for a in range(count))
            code = f"{self.namespace}.moveaxis({name}, ({source},), ({target},))"
        slots = [":" if pos in positions else "None" for pos in range(len(self.frame))]
        return code if "None" not in slots else f"{code}[..., {', '.join(slots)}]"

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        spec = self.arrays.get(str(expr.base))
        if spec is None:
            raise LoweringError(f"{expr.base} is not an input of this kernel")
        if spec.frame_form:
            return spec.name
        dims = tuple(dim_of(i) for i in expr.indices)
        if dims != spec.dims:
            raise LoweringError(f"{expr} indexes {spec.name} (sizes {spec.dims}) with sizes {dims}")
        self.check_separable(expr)
        return self.place(spec.name, dims)
