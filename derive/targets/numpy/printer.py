"""Print index expressions as NumPy array code over the frame (``kernel/printer.py``).

The frame, the placement of inputs and the refusal of n x n intermediates are the shared
``FramePrinter``'s; this printer adds NumPy's functions, a ``Sum`` as a ``keepdims`` reduction
along its axis or, for a product of inputs, one ``numpy.einsum``, and ``out=`` for the schedule's
in-place steps.
"""

from __future__ import annotations

import string

import sympy as sp

from ...calculus.indices import free_indices
from ...errors import LoweringError
from ...model import dim_of
from ..kernel.printer import FramePrinter


class KernelPrinter(FramePrinter):
    """NumPy printer for index expressions over the frame (``np.`` as the module)."""

    # -- module and names -------------------------------------------------------------------
    def _module_format(self, fqn: str, register: bool = True) -> str:
        if fqn.startswith("numpy."):
            fqn = "np." + fqn[len("numpy."):]
        return super()._module_format(fqn, register)

    def _print_not_supported(self, expr: sp.Basic) -> str:
        name = getattr(expr, "func", type(expr)).__name__
        hint = (f"; give the class {name} a method _numpycode(self, printer) returning its NumPy code"
                if isinstance(expr, sp.Function) else "")
        raise LoweringError(f"{name} in {expr} has no NumPy form{hint}")

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

    def _print_attains(self, expr: sp.Function) -> str:
        return f"np.equal({self._print(expr.args[0])}, {self._print(expr.args[1])}).astype(ctx.dtype)"

    def _print_at_most(self, expr: sp.Function) -> str:
        return f"np.less_equal({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_Idx(self, expr: sp.Idx) -> str:
        """An index used as a value (a causal mask): its positions along its axis."""
        dim = dim_of(expr)
        return self.place(f"np.arange({self._print(dim)})", (dim,))

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
        scalars: list[sp.Expr] = []
        operands: list[sp.Expr] = []
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
