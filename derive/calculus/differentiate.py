"""Differentiate an index expression by an input entry ``x[k...]``, one named rule at a time.

``Partial(f, x[k])`` marks a derivative not yet worked out.  ``step`` rewrites every marker by the
rule that fits its expression (sum, product, quotient, power, chain rule, through a sum, index
identity), leaving markers on the parts still to do; ``differentiate`` repeats it to the end.
Unlike ``sympy.diff`` this never lets a summation index clash with the index differentiated by.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..errors import DerivationError
from ..model.functions import attains, max_over
from .indices import free_indices, fresh_index, index_names, substitute_index


class Partial(sp.Expr):
    """The unevaluated partial derivative of ``args[0]`` by the input entry ``args[1]``."""

    is_commutative = True

    def __new__(cls, expr: sp.Expr, wrt: sp.Indexed) -> sp.Expr:
        expr = sp.sympify(expr)
        # Sum() masks a Piecewise with a Dummy while it folds piecewise terms, then puts it back:
        # a masked argument is not a constant.
        if not expr.has(wrt.base) and not expr.has(sp.Dummy):
            return sp.S.Zero
        return sp.Expr.__new__(cls, expr, wrt)

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        expr, wrt = self.args
        return rf"\frac{{\partial}}{{\partial {printer._print(wrt)}}}\left({printer._print(expr)}\right)"

    def _sympystr(self, printer: sp.printing.str.StrPrinter) -> str:
        return f"D[{printer._print(self.args[1])}]({printer._print(self.args[0])})"


@dataclass(frozen=True)
class Step:
    """One rewrite of every open derivative: the expression after it and the rules it used."""

    expr: sp.Expr
    rules: tuple[str, ...]


def differentiate(expr: sp.Expr, wrt: sp.Indexed) -> sp.Expr:
    """The derivative of ``expr`` by ``wrt``, with Kronecker deltas not yet collapsed."""
    return derivation_steps(expr, wrt)[-1].expr


def derivation_steps(expr: sp.Expr, wrt: sp.Indexed) -> list[Step]:
    """Every stage from ``Partial(expr, wrt)`` to the worked-out derivative."""
    current = Partial(expr, wrt)
    steps = [Step(current, ())]
    while current.has(Partial):
        current, rules = step(current)
        steps.append(Step(current, rules))
    return steps


def step(expr: sp.Expr) -> tuple[sp.Expr, tuple[str, ...]]:
    """Apply one rule to each open ``Partial`` in ``expr``."""
    used: list[str] = []

    def rewrite(node: sp.Expr) -> sp.Expr:
        if isinstance(node, Partial):
            rule, result = apply_rule(*node.args)
            if rule not in used:
                used.append(rule)
            return result
        if not node.args or not node.has(Partial):
            return node
        return node.func(*[rewrite(arg) for arg in node.args])

    return rewrite(expr), tuple(used)


def apply_rule(expr: sp.Expr, wrt: sp.Indexed) -> tuple[str, sp.Expr]:
    """The rule for differentiating ``expr`` by ``wrt`` and its one-level result."""
    if not expr.has(wrt.base):
        return "constant", sp.S.Zero
    for kind, rule in RULES:
        if isinstance(expr, kind):
            return rule(expr, wrt)
    raise DerivationError(
        f"no derivative known for {type(expr).__name__} in {expr}; "
        "write it with functions SymPy can differentiate or declare its derivative (fdiff)"
    )


def _indexed(expr: sp.Indexed, wrt: sp.Indexed) -> tuple[str, sp.Expr]:
    if expr.base != wrt.base:
        return "constant", sp.S.Zero
    if len(expr.indices) != len(wrt.indices):
        raise DerivationError(f"{expr} and {wrt} index the same input with different numbers of axes")
    deltas = [sp.KroneckerDelta(a, b) for a, b in zip(expr.indices, wrt.indices)]
    return "index identity", sp.Mul(*deltas)


def _add(expr: sp.Add, wrt: sp.Indexed) -> tuple[str, sp.Expr]:
    return "sum rule", sp.Add(*[Partial(term, wrt) for term in expr.args])


def _mul(expr: sp.Mul, wrt: sp.Indexed) -> tuple[str, sp.Expr]:
    factors = expr.args
    terms = []
    for position, factor in enumerate(factors):
        if factor.has(wrt.base):
            rest = sp.Mul(*(factors[:position] + factors[position + 1:]))
            terms.append(rest * Partial(factor, wrt))
    dependent = [f for f in factors if f.has(wrt.base)]
    if len(dependent) == 1:
        return "constant factor", sp.Add(*terms)
    divides = any(f.is_Pow and f.exp.is_negative for f in dependent)
    return ("quotient rule" if divides else "product rule"), sp.Add(*terms)


def _pow(expr: sp.Pow, wrt: sp.Indexed) -> tuple[str, sp.Expr]:
    base, exponent = expr.args
    if not exponent.has(wrt.base):
        rule = "square-root rule" if exponent == sp.S.Half else "power rule"
        return rule, exponent * base ** (exponent - 1) * Partial(base, wrt)
    return "power rule", expr * (Partial(exponent, wrt) * sp.log(base) + exponent / base * Partial(base, wrt))


def _sum(expr: sp.Sum, wrt: sp.Indexed) -> tuple[str, sp.Expr]:
    body, limits, rule = expr.function, [], "derivative through the sum"
    wrt_names = {str(i.label) for i in free_indices(wrt)}
    taken = index_names(expr) | index_names(wrt)
    for var, lower, upper in expr.limits:
        if lower.has(wrt.base) or upper.has(wrt.base):
            raise DerivationError(f"the limits of {expr} depend on {wrt.base}")
        if str(var.label) in wrt_names:
            new = fresh_index(var, taken)
            taken.add(str(new.label))
            body, var = substitute_index(body, var, new), new
            rule = "rename summation index, derivative through the sum"
        limits.append((var, lower, upper))
    return rule, sp.Sum(Partial(body, wrt), *limits)


def _function(expr: sp.Function, wrt: sp.Indexed) -> tuple[str, sp.Expr]:
    terms = []
    for position, arg in enumerate(expr.args, start=1):
        if not arg.has(wrt.base):
            continue
        try:
            outer = expr.fdiff(position)
        except (sp.ArgumentIndexError, TypeError, NotImplementedError) as error:
            raise DerivationError(f"no derivative known for {expr.func} (argument {position}): {error}") from None
        if isinstance(outer, sp.Derivative) or outer.has(sp.Subs):
            raise DerivationError(f"no derivative known for function {expr.func} in {expr}; declare one: "
                                  f"class {expr.func}(sympy.Function) with a method fdiff(self, argindex=1)")
        terms.append(outer * Partial(arg, wrt))
    return "chain rule", sp.Add(*terms)


def _piecewise(expr: sp.Piecewise, wrt: sp.Indexed) -> tuple[str, sp.Expr]:
    for _, condition in expr.args:
        decidable = isinstance(condition, (sp.core.relational.Relational, sp.logic.boolalg.BooleanAtom))
        if condition.has(wrt.base) and not decidable:
            raise DerivationError(f"cannot differentiate the condition {condition} of {expr}")
    branches = [(Partial(value, wrt), condition) for value, condition in expr.args]
    return "piecewise rule (each branch, conditions held)", sp.Piecewise(*branches)


def _abs(expr: sp.Abs, wrt: sp.Indexed) -> tuple[str, sp.Expr]:
    inner = expr.args[0]
    return "absolute-value rule, derivative sign(u) (0 at u = 0, as PyTorch)", sp.sign(inner) * Partial(inner, wrt)


def _sign(expr: sp.sign, wrt: sp.Indexed) -> tuple[str, sp.Expr]:
    return "sign rule (piecewise constant: derivative 0, as PyTorch)", sp.S.Zero


def _extremum(expr: sp.Max | sp.Min, wrt: sp.Indexed) -> tuple[str, sp.Expr]:
    """PyTorch's conventions: against bounds that hold no input, as clamp_min/clamp_max (a tie gives
    the whole gradient to the clamped expression); between expressions of the inputs, as
    maximum/minimum (a tie splits it evenly, as amax/amin do among several)."""
    name, is_max = type(expr).__name__, isinstance(expr, sp.Max)
    varying = [a for a in expr.args if a.has(sp.Indexed)]
    bounds = [a for a in expr.args if not a.has(sp.Indexed)]
    if bounds:
        inner, bound = expr.func(*varying), expr.func(*bounds)
        kept = inner >= bound if is_max else inner <= bound
        return (f"{name} rule with a bound (as clamp: a tie keeps the gradient)",
                sp.Piecewise((Partial(inner, wrt), kept), (0, True)))
    rule = f"{name} rule (a tie splits evenly, as torch.{'maximum' if is_max else 'minimum'})"
    if len(varying) == 2:
        a, b = varying
        first, second = (a > b, b > a) if is_max else (a < b, b < a)
        return rule, sp.Piecewise((Partial(a, wrt), first), (Partial(b, wrt), second),
                                  ((Partial(a, wrt) + Partial(b, wrt)) / 2, True))
    hits = [attains(a, expr) for a in varying]
    return rule, sp.Add(*[h * Partial(a, wrt) for h, a in zip(hits, varying)]) / sp.Add(*hits)


def _max_over(expr: max_over, wrt: sp.Indexed) -> tuple[str, sp.Expr]:
    """d max_l f_l = sum_m [f_m = max] df_m / #{m: f_m = max}: as torch.amax, ties share evenly."""
    body, var, *mask = expr.args
    new = fresh_index(var, index_names(expr) | index_names(wrt))
    weight = substitute_index(attains(body, expr) * (mask[0] if mask else 1), var, new)
    limits = (new, new.lower, new.upper)
    share = sp.Sum(weight * Partial(substitute_index(body, var, new), wrt), limits) / sp.Sum(weight, limits)
    return "maximum-over-an-axis rule (the gradient goes to the maximal entries, split evenly)", share


RULES = (
    (sp.Indexed, _indexed),
    (sp.Abs, _abs),
    (sp.sign, _sign),
    (sp.Max, _extremum),
    (sp.Min, _extremum),
    (max_over, _max_over),
    (sp.Add, _add),
    (sp.Mul, _mul),
    (sp.Pow, _pow),
    (sp.Sum, _sum),
    (sp.Piecewise, _piecewise),
    (sp.Function, _function),
)
