"""Print index expressions as Array API code (``xp.<function>``) over the frame (``kernel/printer.py``).

The frame, the placement of inputs and the refusal of n x n intermediates are the shared
``FramePrinter``'s; what differs from the NumPy printer is the code: every array function comes
from ``xp``, the namespace of the kernel's inputs (``array_api_compat.array_namespace``), and only
functions of the Array API standard are used.  Sizes and parameters are Python numbers, so an expression of them
alone is printed with ``math`` (``xp.sqrt(E)`` would need an array).  A contraction of several
arrays, which the standard has no ``einsum`` for, is printed as pairwise ``_contract`` calls (the
kernel runtime's sum of a product over frame axes, through ``xp.vecdot`` or ``xp.matmul``), in an
order that keeps every intermediate as small as the operands allow.
"""

from __future__ import annotations

import itertools

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from ...calculus.indices import free_indices
from ...errors import LoweringError
from ...model import dim_of
from ..kernel.printer import ArraySpec, FramePrinter

RENAMED = {"arccos": "acos", "arccosh": "acosh", "arcsin": "asin", "arcsinh": "asinh", "arctan": "atan",
           "arctan2": "atan2", "arctanh": "atanh", "power": "pow", "absolute": "abs"}
"""NumPy's names of functions the Array API standard spells differently."""


class ScalarPrinter(PythonCodePrinter):
    """Python code (``math``) for an expression of sizes and parameters only."""

    printmethod = "_arrayapicode"

    def __init__(self, names: dict[sp.Symbol, str]) -> None:
        super().__init__({"fully_qualified_modules": True})
        self.names = names

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return self.names.get(expr, super()._print_Symbol(expr))

    def _print_Function(self, expr: sp.Function) -> str:
        return _elementary(self, expr) or super()._print_Function(expr)

    def _print_sigmoid(self, expr: sp.Function) -> str:
        u = self._print(expr.args[0])
        return f"(1/(1 + math.exp(-({u}))) if {u} >= 0 else math.exp({u})/(1 + math.exp({u})))"

    def _print_softplus(self, expr: sp.Function) -> str:
        u = self._print(expr.args[0])
        return f"(max({u}, 0) + math.log1p(math.exp(-abs({u}))))"


class ArrayAPIPrinter(FramePrinter):
    """Array API printer for index expressions over the frame (``xp`` as the module)."""

    in_place = False
    namespace = "xp"
    """Array API arrays may be immutable (JAX): no in-place lowering, no ``out=``."""

    def __init__(self, frame: tuple[sp.Expr, ...], arrays: dict[str, ArraySpec],
                 names: dict[sp.Symbol, str]) -> None:
        super().__init__(frame, arrays, names)
        # A model's own function prints itself with _arrayapicode(self, printer) (xp is the namespace),
        # else as its elementary form (as_elementary()), never with its NumPy code (_numpycode, which
        # NumPyPrinter sets on the instance).
        self.printmethod = "_arrayapicode"
        self.scalars = {name for symbol, name in names.items()}
        self.scalar_printer = ScalarPrinter(names)

    # -- names, and what is a Python number ---------------------------------------------------
    def _module_format(self, fqn: str, register: bool = True) -> str:
        module, _, name = fqn.rpartition(".")
        if module == "numpy":
            return "xp." + RENAMED.get(name, name)
        return fqn  # math.<function> for Python numbers: the kernel imports math

    def declare(self, symbol: sp.Symbol, expr: sp.Expr) -> None:
        """As the NumPy printer's; a Python number when ``expr`` is one.  The printer serves every
        function of a kernel, and one function's ``t1`` may be a number where another's is an array."""
        super().declare(symbol, expr)
        if self.is_scalar(expr):
            self.scalars.add(str(symbol))
        else:
            self.scalars.discard(str(symbol))

    def is_scalar(self, expr: sp.Expr) -> bool:
        """An expression of sizes, parameters and numbers only (a Python number in the kernel)."""
        if expr.atoms(sp.Indexed, sp.Idx, sp.Sum) or isinstance(expr, sp.logic.boolalg.Boolean):
            return False
        return all(str(s) in self.scalars or s in self.names for s in expr.free_symbols)

    def _print(self, expr, **kwargs) -> str:
        if isinstance(expr, sp.Expr) and not expr.is_Atom and self.is_scalar(expr):
            return self.scalar_printer.doprint(expr)
        return super()._print(expr, **kwargs)

    def _print_Function(self, expr: sp.Function) -> str:
        return _elementary(self, expr) or super()._print_Function(expr)

    def _print_not_supported(self, expr: sp.Basic) -> str:
        name = getattr(expr, "func", type(expr)).__name__
        hint = (f"; give the class {name} a method _arrayapicode(self, printer) returning its Array API "
                "code (xp.<function>)" if isinstance(expr, sp.Function) else "")
        raise LoweringError(f"{name} in {expr} has no Array API form{hint}")

    # -- functions the standard lacks or that need care ---------------------------------------
    def _print_erf(self, expr: sp.Function) -> str:
        return f"_erf(xp, {self._print(expr.args[0])})"

    def _print_sigmoid(self, expr: sp.Function) -> str:
        return f"_sigmoid(xp, {self._print(expr.args[0])})"

    def _print_softplus(self, expr: sp.Function) -> str:
        return f"xp.logaddexp(0.0, {self._print(expr.args[0])})"

    def _print_max_over(self, expr: sp.Function) -> str:
        body, var, *mask = expr.args
        self.check_separable(body)
        code = self._print(body)
        if mask and mask[0] != 1:
            code = f"xp.where({self._print(mask[0])} > 0, {code}, -xp.inf)"
        return f"xp.max({code}, axis={self.axis(dim_of(var))}, keepdims=True)"

    def _print_And(self, expr: sp.And) -> str:
        return self._extremum("xp.logical_and", expr)

    def _print_Or(self, expr: sp.Or) -> str:
        return self._extremum("xp.logical_or", expr)

    def _print_Not(self, expr: sp.Not) -> str:
        return f"xp.logical_not({self._print(expr.args[0])})"

    def _print_attains(self, expr: sp.Function) -> str:
        return f"xp.astype(xp.equal({self._print(expr.args[0])}, {self._print(expr.args[1])}), ctx.dtype)"

    def _print_at_most(self, expr: sp.Function) -> str:
        """A 0/1 mask in the computing dtype (it multiplies: the standard has no bool * float)."""
        return f"xp.astype(xp.less_equal({self._print(expr.args[0])}, {self._print(expr.args[1])}), ctx.dtype)"

    def _print_Idx(self, expr: sp.Idx) -> str:
        dim = dim_of(expr)
        return self.place(f"xp.arange({self._print(dim)}, device=ctx.device)", (dim,))

    def _print_KroneckerDelta(self, expr: sp.KroneckerDelta) -> str:
        left, right = expr.args
        if isinstance(left, sp.Idx) and isinstance(right, sp.Idx):
            raise LoweringError(f"a Kronecker delta {expr} survived simplification; it has no O(n) form")
        self.check_separable(expr)
        return f"xp.astype(xp.equal({self._print(left)}, {self._print(right)}), ctx.dtype)"

    def print_into(self, expr: sp.Expr, out: str) -> str:
        raise LoweringError("the Array API target computes nothing into an existing array")

    # -- reductions -----------------------------------------------------------------------------
    def _print_Sum(self, expr: sp.Sum) -> str:
        contraction = self.contraction(expr)
        if contraction is not None:
            return contraction
        body = expr.function
        self.check_separable(body)
        axes = sorted(self.axis(dim_of(var)) for var, _, _ in expr.limits)
        axis = str(axes[0]) if len(axes) == 1 else f"({', '.join(map(str, axes))},)"
        return f"xp.sum({self._print(body)}, axis={axis}, keepdims=True)"

    def contraction(self, expr: sp.Sum) -> str | None:
        """A (nested) sum of a product of two or more arrays as pairwise ``_contract`` calls, else None.

        Each step contracts the pair whose product spans the fewest axes, summing the axes no other
        operand and not the result needs; factors without core axes multiply the result.
        """
        body = expr
        while isinstance(body, sp.Sum):
            body = body.function
        scalars, operands = [], []
        for factor in sp.Mul.make_args(body):
            base, exponent = factor.as_base_exp()
            if isinstance(base, sp.Indexed) and exponent == 2:
                operands += [base, base]  # sum(x**2) reads x twice; no squared array is built
            elif free_indices(factor):
                operands.append(factor)
            else:
                scalars.append(factor)
        if len(operands) < 2:
            return None
        free = set(free_indices(expr))
        self.check_separable(sp.Mul(*free))
        pending = []
        for factor in operands:
            self.check_separable(factor)
            code = self.parenthesize(factor, sp.printing.precedence.PRECEDENCE["Mul"])  # joined by *
            pending.append((code, set(free_indices(factor))))
        while len(pending) > 1:
            pending = self._contract_pair(pending, free)
        code, spans = pending[0]
        left = sorted(self.axis(dim_of(i)) for i in spans - free)
        if left:
            code = f"xp.sum({code}, axis=({', '.join(map(str, left))},), keepdims=True)"
        if scalars:
            code = f"{self.parenthesize(sp.Mul(*scalars), sp.printing.precedence.PRECEDENCE['Mul'])}*{code}"
        return code

    def _contract_pair(self, pending: list[tuple[str, set]], free: set) -> list[tuple[str, set]]:
        """``pending`` with the cheapest pair replaced by its contraction."""
        def cost(pair: tuple[int, int]) -> tuple[int, int, tuple[int, int]]:
            (_, a), (_, b) = pending[pair[0]], pending[pair[1]]
            return len(a | b), len(self._kept(pending, pair, free)), pair

        first, second = min(itertools.combinations(range(len(pending)), 2), key=cost)
        kept = self._kept(pending, (first, second), free)
        (a, spans_a), (b, spans_b) = pending[first], pending[second]
        summed = sorted(self.axis(dim_of(i)) for i in (spans_a | spans_b) - kept)
        code = f"_contract(xp, {a}, {b}, {tuple(summed)})" if summed else f"{a}*{b}"
        rest = [p for position, p in enumerate(pending) if position not in (first, second)]
        return rest + [(code, kept)]

    @staticmethod
    def _kept(pending: list[tuple[str, set]], pair: tuple[int, int], free: set) -> set:
        """The indices of a pair's product that the result or another operand still needs."""
        others = set().union(*(s for position, (_, s) in enumerate(pending) if position not in pair))
        spans = pending[pair[0]][1] | pending[pair[1]][1]
        return spans & (free | others)


def _elementary(printer, expr: sp.Function) -> str | None:
    """A model's own function (one SymPy does not know) printed as its elementary form, if it has one
    (parenthesised: it stands where the call stood, as in ``f(t)**2``)."""
    if expr.func.__name__ in printer.known_functions or not hasattr(expr, "as_elementary"):
        return None
    return f"({printer._print(expr.as_elementary())})"
