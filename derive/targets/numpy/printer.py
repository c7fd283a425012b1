"""Print index expressions as NumPy array code over a fixed frame of core axes.

Every printed array has the operator's core axes (the *frame*, one axis per size symbol) as its
trailing axes, size one where the expression does not depend on that axis (all of them, so that
leading batch axes are never mistaken for core axes).  An ``Indexed`` input is placed onto the frame by its index sizes, a ``Sum`` becomes a
``keepdims`` reduction along its axis or, for a product of inputs, one ``numpy.einsum``.  Two
indices over the same size in one array would be an n x n intermediate, which is refused.
"""

from __future__ import annotations

import string
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


class KernelPrinter(NumPyPrinter):
    """NumPy printer for index expressions over the frame ``frame`` (``np.`` as the module)."""

    in_place = True
    namespace = "np"
    """The module the printed calls go through (the Array API printer's is ``xp``)."""
    """The view builder lowers the schedule in place (``schedule/inplace.py``) for this printer."""

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

    def full(self, shape: str, value: float) -> str:
        """Code for a new array of ``shape`` (code) filled with ``value``, in the computing dtype."""
        return f"np.full({shape}, {value!r}, ctx.dtype)"

    def shifted(self, name: str, axis: int) -> str:
        """Code for input ``name`` minus its maximum along ``axis``."""
        return f"{name} - np.max({name}, axis={axis}, keepdims=True)"

    # -- module and names -------------------------------------------------------------------
    def _module_format(self, fqn: str, register: bool = True) -> str:
        if fqn.startswith("numpy."):
            fqn = "np." + fqn[len("numpy."):]
        return super()._module_format(fqn, register)

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return self.names.get(expr, super()._print_Symbol(expr))

    def _print_not_supported(self, expr: sp.Basic) -> str:
        name = getattr(expr, "func", type(expr)).__name__
        hint = (f"; give the class {name} a method _numpycode(self, printer) returning its NumPy code"
                if isinstance(expr, sp.Function) else "")
        raise LoweringError(f"{name} in {expr} has no NumPy form{hint}")

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        if expr.exp == -1:
            return f"1/{self.parenthesize(expr.base, sp.printing.precedence.PRECEDENCE['Pow'])}"
        return super()._print_Pow(expr, rational=rational)

    # -- functions NumPy lacks or computes unstably -------------------------------------------
    def _print_erf(self, expr: sp.Function) -> str:
        self.imports.add("import scipy.special")
        return f"scipy.special.erf({self._print(expr.args[0])})"

    def _print_sigmoid(self, expr: sp.Function) -> str:
        self.imports.add("import scipy.special")
        return f"scipy.special.expit({self._print(expr.args[0])})"

    def _print_softplus(self, expr: sp.Function) -> str:
        return f"np.logaddexp(0, {self._print(expr.args[0])})"

    def _print_max_over(self, expr: sp.Function) -> str:
        body, var, *mask = expr.args
        self.check_separable(body)
        code = self._print(body)
        if mask and mask[0] != 1:
            code = f"np.where({self._print(mask[0])}, {code}, -np.inf)"
        return f"np.max({code}, axis={self.axis(dim_of(var))}, keepdims=True)"

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

    def _print_attains(self, expr: sp.Function) -> str:
        return f"np.equal({self._print(expr.args[0])}, {self._print(expr.args[1])}).astype(ctx.dtype)"

    def _print_at_most(self, expr: sp.Function) -> str:
        return f"np.less_equal({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        *branches, (last, condition) = expr.args
        if condition != sp.true:
            raise LoweringError(f"{expr} has no otherwise-branch")
        code = self._print(last)
        for value, condition in reversed(branches):
            code = f"{self.namespace}.where({self._print(condition)}, {self._print(value)}, {code})"
        return code

    def _print_Idx(self, expr: sp.Idx) -> str:
        """An index used as a value (a causal mask): its positions along its axis."""
        dim = dim_of(expr)
        return self.place(f"np.arange({self._print(dim)})", (dim,))

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

    def print_into(self, expr: sp.Expr, out: str) -> str:
        """``expr`` computed into the existing array ``out``: its last operation as a ufunc call."""
        if isinstance(expr, sp.Mul):
            factors = sp.Mul.make_args(expr)
            over = [f.base for f in factors if f.is_Pow and f.exp == -1 and free_indices(f)]
            if over and len(over) < len(factors):
                numerator = sp.Mul(*(f for f in factors if not (f.is_Pow and f.base in over and f.exp == -1)))
                return f"np.divide({self._print(numerator)}, {self._print(sp.Mul(*over))}, out={out})"
            spans = free_indices(expr)
            large = [f for f in factors if free_indices(f) == spans]
            first = sp.Mul(*large) if 0 < len(large) < len(factors) else factors[0]
            rest = sp.Mul(*(f for f in factors if f not in sp.Mul.make_args(first)))
            return f"np.multiply({self._print(first)}, {self._print(rest)}, out={out})"
        if isinstance(expr, sp.Add):
            return f"np.add({self._print(expr.args[0])}, {self._print(sp.Add(*expr.args[1:]))}, out={out})"
        code = self._print(expr)
        ufunc = code.startswith(("np.", "scipy.special.")) and code.endswith(")")
        if not (isinstance(expr, sp.Function) and len(expr.args) == 1 and ufunc):
            raise LoweringError(f"{expr} cannot be computed into an existing array")
        return f"{code[:-1]}, out={out})"

    def _print_KroneckerDelta(self, expr: sp.KroneckerDelta) -> str:
        left, right = expr.args
        if isinstance(left, sp.Idx) and isinstance(right, sp.Idx):
            raise LoweringError(f"a Kronecker delta {expr} survived simplification; it has no O(n) form")
        self.check_separable(expr)
        return f"np.equal({self._print(left)}, {self._print(right)}).astype(ctx.dtype)"

    # -- placement on the frame ---------------------------------------------------------------
    def axis(self, dim: sp.Expr) -> int:
        """The (negative) axis of ``dim`` in the frame."""
        return self.frame.index(dim) - len(self.frame)

    def check_separable(self, expr: sp.Expr) -> None:
        dims = [dim_of(i) for i in free_indices(expr)]
        for dim in set(dims):
            if dims.count(dim) > 1:
                clash = sorted(str(i) for i in free_indices(expr) if dim_of(i) == dim)
                raise LoweringError(
                    f"{expr} depends on indices {', '.join(clash)} of one size {dim}: "
                    "printing it would build an n x n array"
                )

    def place(self, name: str, dims: tuple[sp.Expr, ...]) -> str:
        """Code that views array ``name`` (trailing core axes of sizes ``dims``) on the frame."""
        positions = [self.frame.index(d) for d in dims]
        code, count = name, len(dims)
        if positions != sorted(positions):
            order = sorted(range(count), key=lambda a: positions[a])
            source = ", ".join(str(a - count) for a in order)
            target = ", ".join(str(a - count) for a in range(count))
            code = f"np.moveaxis({name}, ({source},), ({target},))"
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

    # -- reductions -----------------------------------------------------------------------------
    def _print_Sum(self, expr: sp.Sum) -> str:
        contraction = self.einsum(expr)
        if contraction is not None:
            return contraction
        body = expr.function
        self.check_separable(body)
        axes = [self.axis(dim_of(var)) for var, _, _ in expr.limits]
        axis = str(axes[0]) if len(axes) == 1 else f"({', '.join(map(str, sorted(axes)))})"
        return f"np.sum({self._print(body)}, axis={axis}, keepdims=True)"

    def einsum(self, expr: sp.Sum) -> str | None:
        """One einsum for a (nested) sum of a product of two or more arrays (a square counts as two), else None."""
        body = expr
        while isinstance(body, sp.Sum):
            body = body.function
        scalars, operands = [], []
        for factor in sp.Mul.make_args(body):
            base, exponent = factor.as_base_exp()
            if isinstance(base, sp.Indexed) and exponent == 2:
                operands += [base, base]  # sum(x**2) reads x twice; no squared array is built
            else:
                (operands if free_indices(factor) else scalars).append(factor)
        if len(operands) < 2:
            return None
        letters: dict[sp.Idx, str] = {}
        codes, subscripts = [], []
        for factor in operands:
            code, indices = self.operand(factor)
            codes.append(code)
            subscripts.append("..." + "".join(letters.setdefault(i, string.ascii_lowercase[len(letters)])
                                              for i in indices))
        free = sorted(free_indices(expr), key=lambda i: self.frame.index(dim_of(i)))
        self.check_separable(sp.Mul(*free))
        output = "..." + "".join(letters[i] for i in free)
        optimize = len(operands) > 2 or not all(set(free) <= free_indices(f) for f in operands)
        code = f"np.einsum('{','.join(subscripts)}->{output}', {', '.join(codes)}{', optimize=True' * optimize})"
        code = self.place(code, tuple(dim_of(i) for i in free))
        if scalars:
            code = f"{self.parenthesize(sp.Mul(*scalars), sp.printing.precedence.PRECEDENCE['Mul'])}*{code}"
        return code

    def operand(self, factor: sp.Expr) -> tuple[str, tuple[sp.Idx, ...]]:
        """An einsum operand: an input as it is, or any other factor squeezed to its own axes."""
        if isinstance(factor, sp.Indexed) and not self.arrays[str(factor.base)].frame_form:
            if all(isinstance(i, sp.Idx) for i in factor.indices) and len(set(factor.indices)) == len(factor.indices):
                self.check_separable(factor)
                return self.arrays[str(factor.base)].name, tuple(factor.indices)
        self.check_separable(factor)
        indices = tuple(sorted(free_indices(factor), key=lambda i: self.frame.index(dim_of(i))))
        positions = {self.frame.index(dim_of(i)) for i in indices}
        code = self._print(factor)
        if len(positions) == len(self.frame):
            return code, indices
        slots = ", ".join(":" if p in positions else "0" for p in range(len(self.frame)))
        return f"{code if code.isidentifier() else f'({code})'}[..., {slots}]", indices
