"""Functions a model may use beyond SymPy's own, as SymPy functions the engine differentiates.

Activations with stable numerical forms (``sigmoid``, ``softplus``): each knows its derivative
(``fdiff``), its elementary definition (``as_elementary``, which the test oracle differentiates
independently), its LaTeX, and how the NumPy printer writes it stably.  ``max_over(f, j)`` is a
maximum over an axis (it binds j, as a sum does; its derivative is a rule of the differentiator);
``attains`` and ``at_most`` are 0/1 indicators the engine writes into derivatives and masks.
"""

from __future__ import annotations

import sympy as sp


class sigmoid(sp.Function):
    """The logistic function 1 / (1 + exp(-x)), printed as scipy.special.expit (finite for any x)."""

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        value = sigmoid(self.args[0])
        return value * (1 - value)

    def as_elementary(self) -> sp.Expr:
        return 1 / (1 + sp.exp(-self.args[0]))

    SYMBOL = (r"\sigma", "σ")
    """How the documents show it: (LaTeX, Unicode)."""

    def _latex(self, printer, exp=None) -> str:
        base = rf"{self.SYMBOL[0]}\left({printer._print(self.args[0])}\right)"
        return base if exp is None else rf"{base}^{{{exp}}}"


class softplus(sp.Function):
    """log(1 + exp(x)), printed as numpy.logaddexp(0, x) (finite for any x)."""

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sigmoid(self.args[0])

    def as_elementary(self) -> sp.Expr:
        return sp.log(1 + sp.exp(self.args[0]))

    def _latex(self, printer, exp=None) -> str:
        base = rf"\operatorname{{softplus}}\left({printer._print(self.args[0])}\right)"
        return base if exp is None else rf"{base}^{{{exp}}}"


def model_functions(exprs: tuple[sp.Expr, ...]) -> dict[str, type]:
    """The ``sp.Function`` classes a model defines itself (a user's ``silu``), by name, with those
    their derivatives bring in (``silu``'s ``fdiff`` uses ``logistic``): what its twin may name."""
    found: dict[str, type] = {}
    pending = [f for e in exprs if isinstance(e, sp.Basic) for f in e.atoms(sp.Function)]
    while pending:
        call = pending.pop()
        cls = type(call)
        if cls.__module__.startswith("sympy.") or cls.__name__ in found:
            continue
        found[cls.__name__] = cls
        for argindex in range(1, len(call.args) + 1):
            try:
                pending += list(call.fdiff(argindex).atoms(sp.Function))
            except (TypeError, ValueError, NotImplementedError, AttributeError, sp.core.function.ArgumentIndexError):
                pass
    return found


def elementary(expr: sp.Expr, memo: dict[sp.Basic, sp.Basic] | None = None) -> sp.Expr:
    """``expr`` with every function that carries an elementary definition (``as_elementary``: this
    module's, or a model's own) written out, so SymPy can evaluate and compare it.

    As ``expr.replace(query, value)``, but each distinct subexpression is visited once: an expression
    written out at concrete sizes is a DAG (a row's mean in every entry of the row), which
    ``replace`` walks as a tree.  ``memo`` (node -> written out) may be kept across calls."""
    memo = {} if memo is None else memo

    def walk(node: sp.Basic) -> sp.Basic:  # children first, as Basic.replace; each node once
        if node not in memo:
            new = tuple(walk(arg) for arg in node.args)
            result = node.func(*new) if new != node.args else node
            if isinstance(result, sp.Function) and hasattr(result, "as_elementary"):
                value = result.as_elementary()
                result = result if value is None else value
            memo[node] = result
        return memo[node]

    return walk(expr)


class at_most(sp.Function):
    """The indicator [j <= i] of two indices (1 or 0): a causal mask.  Constant in every input."""

    nargs = 2

    @classmethod
    def eval(cls, j: sp.Expr, i: sp.Expr):
        if j.is_Integer and i.is_Integer:
            return sp.S.One if j <= i else sp.S.Zero
        return None

    def as_elementary(self) -> sp.Expr:
        return self

    def _latex(self, printer, exp=None) -> str:
        j, i = (printer._print(a) for a in self.args)
        return rf"[{j} \le {i}]"


class max_over(sp.Function):
    """max_over(f, l[, mask]): the maximum of f over the index l, which it binds, taken where the
    0/1 ``mask`` is 1 (a keepdims max in kernels).  Usable in a model, like torch.amax: its gradient
    goes to the entries where f_l is the maximum, split evenly among ties."""

    nargs = (2, 3)
    binds = 1
    """Position of the argument this function binds, as a Sum binds its summation index."""

    def unroll(self, at) -> sp.Expr:
        """The maximum written out at concrete sizes; ``at(part, {name: value})`` evaluates a part."""
        body, var, *mask = self.args
        label = var.label.name
        values = range(int(at(var.lower, {})), int(at(var.upper, {})) + 1)
        kept = [v for v in values if not mask or at(mask[0], {label: sp.Integer(v)}) != 0]
        return sp.Max(*(at(body, {label: sp.Integer(v)}) for v in kept), evaluate=False)

    def _pretty(self, printer):
        return printer._print_Function(self, func_name="amax")  # "max_over" would print as max subscript over

    def _latex(self, printer, exp=None) -> str:
        body, var = (printer._print(a) for a in self.args[:2])
        where = rf" : {printer._print(self.args[2])}" if len(self.args) == 3 and self.args[2] != 1 else ""
        base = rf"\max_{{{var}{where}}} {body}"
        return base if exp is None else rf"\left({base}\right)^{{{exp}}}"


class attains(sp.Function):
    """[value = extreme]: 1 where an entry is the maximum (or minimum), else 0: the entries its
    gradient goes to.  Piecewise constant: its derivative is 0."""

    nargs = 2

    @classmethod
    def eval(cls, value: sp.Expr, maximum: sp.Expr):
        if value.is_number and maximum.is_number:
            return sp.S.One if value == maximum else sp.S.Zero
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.S.Zero

    def as_elementary(self) -> sp.Expr:
        return sp.Piecewise((1, sp.Eq(*self.args)), (0, True))

    def _latex(self, printer, exp=None) -> str:
        value, maximum = (printer._print(a) for a in self.args)
        return rf"[{value} = {maximum}]"

