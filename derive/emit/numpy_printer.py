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

from ..calculus.indices import free_indices
from ..model import dim_of


class LoweringError(ValueError):
    """An expression that has no O(input) array form."""


@dataclass(frozen=True)
class ArraySpec:
    """A named array and the size symbol of each of its core axes, in order."""

    name: str
    dims: tuple[sp.Expr, ...]
    frame_form: bool = False
    """A kernel temporary, already laid out on the frame (printed as it is)."""


class KernelPrinter(NumPyPrinter):
    """NumPy printer for index expressions over the frame ``frame`` (``np.`` as the module)."""

    def __init__(self, frame: tuple[sp.Expr, ...], arrays: dict[str, ArraySpec],
                 names: dict[sp.Symbol, str]) -> None:
        super().__init__({"fully_qualified_modules": True, "allow_unknown_functions": False})
        self.frame = frame
        self.arrays = arrays
        self.names = names

    # -- module and names -------------------------------------------------------------------
    def _module_format(self, fqn: str, register: bool = True) -> str:
        if fqn.startswith("numpy."):
            fqn = "np." + fqn[len("numpy."):]
        return super()._module_format(fqn, register)

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return self.names.get(expr, super()._print_Symbol(expr))

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        if expr.exp == -1:
            return f"1/{self.parenthesize(expr.base, sp.printing.precedence.PRECEDENCE['Pow'])}"
        return super()._print_Pow(expr, rational=rational)

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
            spans = free_indices(expr)
            large = [f for f in factors if free_indices(f) == spans]
            first = sp.Mul(*large) if 0 < len(large) < len(factors) else factors[0]
            rest = sp.Mul(*(f for f in factors if f not in sp.Mul.make_args(first)))
            return f"np.multiply({self._print(first)}, {self._print(rest)}, out={out})"
        if isinstance(expr, sp.Add):
            return f"np.add({self._print(expr.args[0])}, {self._print(sp.Add(*expr.args[1:]))}, out={out})"
        code = self._print(expr)
        if not (isinstance(expr, sp.Function) and len(expr.args) == 1 and code.startswith("np.") and code.endswith(")")):
            raise LoweringError(f"{expr} cannot be computed into an existing array")
        return f"{code[:-1]}, out={out})"

    def _print_KroneckerDelta(self, expr: sp.KroneckerDelta) -> str:
        raise LoweringError(f"a Kronecker delta {expr} survived simplification; it has no O(n) form")

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
        """One einsum for a (nested) sum of a product of arrays (squares included), else None.

        A sum of products never builds the product: Sum(x[j]**2) is einsum(x, x), and kernel
        temporaries take part with every frame axis (size one where they do not vary).
        """
        bound, body = [], expr
        while isinstance(body, sp.Sum):
            bound.extend(limit[0] for limit in body.limits)
            body = body.function
        scalars, tensors = [], []
        for factor in sp.Mul.make_args(body):
            base, exponent = factor.as_base_exp()
            if isinstance(base, sp.Indexed) and exponent.is_Integer and 1 <= exponent <= 3:
                tensors.extend([base] * int(exponent))
            elif not free_indices(factor):
                scalars.append(factor)
            else:
                return None
        if len(tensors) < 2 or len({str(i.label) for i in bound}) != len(bound):
            return None
        letters = self._letters(tensors)
        by_dim = {dim_of(i): letter for i, letter in letters.items()}
        for dim in self.frame:
            by_dim.setdefault(dim, string.ascii_lowercase[len(by_dim)])
        operands = ", ".join(self.arrays[str(t.base)].name for t in tensors)
        inputs = ",".join("..." + self._subscripts(t, letters, by_dim) for t in tensors)
        free = sorted(free_indices(expr), key=lambda i: self.frame.index(dim_of(i)))
        self.check_separable(sp.Mul(*free))
        output = "..." + "".join(letters[i] for i in free)
        code = f"np.einsum('{inputs}->{output}', {operands}{self._optimize(tensors, free)})"
        if free:
            code = self.place(code, tuple(dim_of(i) for i in free))
        else:
            code = f"{code}[..., {', '.join(['None'] * len(self.frame))}]"
        if scalars:
            code = f"{self._print(sp.Mul(*scalars))}*{code}"
        return code

    @staticmethod
    def _optimize(tensors: list[sp.Indexed], free: list[sp.Idx]) -> str:
        """Let einsum plan a contraction (BLAS) when it is a product of matrices or of three or
        more arrays; a two-array product reduced to axes both share is one C loop, far faster."""
        shared = all(set(free) <= set(t.indices) for t in tensors)
        return "" if len(tensors) == 2 and shared else ", optimize=True"

    def _subscripts(self, tensor: sp.Indexed, letters: dict[sp.Idx, str], by_dim: dict[sp.Expr, str]) -> str:
        """An input's own axes, or every frame axis for a kernel temporary."""
        if self.arrays[str(tensor.base)].frame_form:
            return "".join(by_dim[dim] for dim in self.frame)
        return "".join(letters[i] for i in tensor.indices)

    @staticmethod
    def _letters(tensors: list[sp.Indexed]) -> dict[sp.Idx, str]:
        letters: dict[sp.Idx, str] = {}
        for tensor in tensors:
            for idx in tensor.indices:
                letters.setdefault(idx, string.ascii_lowercase[len(letters)])
        return letters


def print_numpy(expr: sp.Expr, printer: KernelPrinter) -> str:
    return printer.doprint(expr)
