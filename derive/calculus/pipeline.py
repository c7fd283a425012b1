"""The passes in order: model -> Jacobian entry per input -> simplified structure -> VJP and JVP.

``derive(model)`` is the one entry point; everything downstream (kernels, LaTeX, the CLI) reads
the ``Derivation`` it returns and never reaches back into the calculus.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import sympy as sp

from ..budget import check_size, step
from ..model import Input, OperatorModel, ScalarEntry, registry
from . import contract
from .compact import Compact, Rewriter, compact, rewriter
from .differentiate import DerivationError, Step, derivation_steps
from .indices import free_indices, fresh_entry, fresh_index, index_names
from .rename import without_clashes
from .rules import simplify
from .second import SecondTerm, second_terms
from .validate import validate

COTANGENT = "dy"


def tangent_name(input_name: str) -> str:
    return f"dot_{input_name}"


@dataclass(frozen=True)
class InputGradient:
    """Everything derived for one differentiable input."""

    input: Input
    wrt: sp.Indexed
    steps: tuple[Step, ...]
    jacobian: sp.Expr
    vjp: sp.Expr
    jvp: sp.Expr

    @property
    def wrt_indices(self) -> tuple[sp.Idx, ...]:
        return tuple(self.wrt.indices)


@dataclass(frozen=True)
class Derivation:
    model: OperatorModel
    gradients: tuple[InputGradient, ...]

    @cached_property
    def cotangent(self) -> sp.IndexedBase:
        return sp.IndexedBase(COTANGENT)

    @cached_property
    def rewriter(self) -> Rewriter:
        """The model's named quantities and the substitutions its inputs allow (``compact.py``)."""
        model = self.model
        return rewriter(model.output, model.output_indices, model.where, [i.base for i in model.inputs])

    @cached_property
    def _compact(self) -> dict[tuple[str, str], Compact]:
        return {}

    def compact(self, input_name: str, kind: str) -> Compact:
        """The checked compact form of the ``kind`` ("vjp", "jvp" or "vjp_jvp") by ``input_name`` (computed once)."""
        key = (input_name, kind)
        if key not in self._compact:
            raw = self.vjp_jvp(input_name) if kind == "vjp_jvp" else getattr(self.gradient(input_name), kind)
            with step(f"simplifying the {kind} of {input_name}", self.model):
                # vjp_jvp, several times larger: checked at sizes 1 and 2 (the documents check the
                # result against its definition again, and the twin proof against the oracle)
                form = compact(raw, self.rewriter, self.model.dims(), (1, 2) if kind == "vjp_jvp" else (1, 2, 3))
                check_size(f"a {kind}", form.expr, form.written)
            self._compact[key] = form
        return self._compact[key]

    def kernel_form(self, input_name: str, kind: str) -> Compact:
        """The ``kind`` ("vjp", "jvp") the kernels print: the compact form where the model has a
        quantity to write the input through (x_hat, y), else the raw contraction."""
        if self.rewriter.substitutions:
            return self.compact(input_name, kind)
        raw = getattr(self.gradient(input_name), kind)
        return Compact(raw, raw, None)

    @cached_property
    def _variants(self) -> dict[object, Derivation]:
        return {}

    def variants(self) -> list[tuple[object, Derivation]]:
        """(value, derivation) for each value of the model's formula-selecting parameter (gelu's
        ``approximate``), this one for its default; [(None, self)] without one.  Each variant is
        derived once and kept: every target that asks reads the same one."""
        choice = next((p for p in self.model.params if p.choices), None)
        if choice is None:
            return [(None, self)]
        for value in choice.choices:
            if value != choice.default and value not in self._variants:
                self._variants[value] = derive(registry.rebuild(self.model, **{choice.name: value}))
        return [(value, self if value == choice.default else self._variants[value]) for value in choice.choices]

    @cached_property
    def _second(self) -> dict[str, tuple[SecondTerm, ...]]:
        return {}

    def second_order(self, input_name: str) -> tuple[SecondTerm, ...]:
        """The terms of ``vjp_jvp`` by ``input_name``, one per input whose tangent reaches it
        (``second.py``; computed once)."""
        if input_name not in self._second:
            gradient = self.gradient(input_name)
            with step(f"differentiating the vjp of {input_name} again", self.model):
                try:
                    terms = second_terms(gradient.vjp, gradient.wrt_indices, self.model.differentiable_inputs,
                                         tangent_name)
                except DerivationError as error:
                    raise DerivationError(f"operator {self.model.name!r}, second derivative by {input_name}: "
                                          f"{error}") from None
                check_size("a second derivative", *(e for t in terms for e in (t.hessian, t.product)))
            self._second[input_name] = terms
        return self._second[input_name]

    def vjp_jvp(self, input_name: str) -> sp.Expr:
        """``vjp_jvp`` by ``input_name``: the derivative of its VJP along every input's tangent."""
        return sp.Add(*(term.product for term in self.second_order(input_name)))

    def gradient(self, input_name: str) -> InputGradient:
        for gradient in self.gradients:
            if gradient.input.name == input_name:
                return gradient
        raise KeyError(f"{self.model.name} has no differentiable input {input_name!r}")


def wrt_entry(model: OperatorModel, inp: Input) -> sp.Indexed:
    """``x[k...]`` with index names that clash with nothing in the model."""
    taken = index_names(model.output) | {str(i.label) for i in model.output_indices}
    taken |= {i.name for i in model.inputs} | {name for name, _ in model.where}  # k[k, j] would not read
    return fresh_entry(inp.base, inp.dims, taken)


def derive_input(model: OperatorModel, inp: Input, output: sp.Expr) -> InputGradient:
    wrt = wrt_entry(model, inp)
    steps = tuple(derivation_steps(output, wrt))
    jacobian = simplify(steps[-1].expr)
    cotangent = sp.IndexedBase(COTANGENT)
    tangent = sp.IndexedBase(tangent_name(inp.name))
    wrt_indices = tuple(wrt.indices)
    return InputGradient(
        input=inp,
        wrt=wrt,
        steps=steps,
        jacobian=jacobian,
        vjp=contract.vjp(cotangent, jacobian, model.output_indices),
        jvp=contract.jvp(tangent, jacobian, wrt_indices),
    )


def drop_idle_limits(expr: sp.Expr) -> sp.Expr:
    """``Sum(f, (j, 0, n - 1))`` with ``f`` free of ``j`` -> ``n*f``: a limit the body ignores only
    counts (kernels would otherwise reduce over an axis nothing spans).  SymPy flattens nested sums
    into one, so a variable may repeat: the innermost binds, an outer repeat is such a count."""

    def fix(total: sp.Sum) -> sp.Expr:
        used, kept, count = free_indices(total.function), [], sp.S.One
        for var, lower, upper in total.limits:  # innermost first: a repeated variable binds there
            if var in used:
                kept.append((var, lower, upper))
                used = used - {var}
            else:
                count *= upper - lower + 1
        return count * (sp.Sum(total.function, *kept) if kept else total.function)

    return expr.replace(lambda e: isinstance(e, sp.Sum), fix)


def literal_entries(expr: sp.Expr, model: OperatorModel) -> sp.Expr:
    """Every literal index on an axis of length one (``alpha[0]`` of ``Input("alpha", (1,))``) as
    a one-term sum over that axis, ``Sum(alpha[o], (o, 0, 0))``: the same number, and an entry the
    differentiator and the printers place on the axis like any other."""

    def fix(entry: sp.Indexed) -> sp.Expr:
        taken = index_names(expr) | {str(entry.base)}
        indices, limits = list(entry.indices), []
        for position, value in enumerate(indices):
            if value.is_Integer and model.input(str(entry.base)).dims[position] == 1:
                idx = fresh_index(sp.Idx("o", (0, 0)), taken)
                taken.add(str(idx.label))
                indices[position] = idx
                limits.append((idx, 0, 0))
        return sp.Sum(entry.base[tuple(indices)], *limits)

    return expr.replace(lambda e: isinstance(e, sp.Indexed) and any(i.is_Integer for i in e.indices), fix)


def scalar_entries(expr: sp.Expr, model: OperatorModel) -> sp.Expr:
    """A scalar input written bare (``alpha.base``) as its entry ``alpha[()]``, which it means."""
    scalars = {inp.base for inp in model.inputs if not inp.dims}
    if isinstance(expr, sp.Indexed) or not expr.args and expr not in scalars:
        return expr
    if expr in scalars:
        return ScalarEntry(expr)
    return expr.func(*(scalar_entries(arg, model) for arg in expr.args))


def derive(model: OperatorModel) -> Derivation:
    """Differentiate ``model`` by every differentiable input (after ``validate(model)``)."""
    validate(model)
    model = without_clashes(model)
    output = drop_idle_limits(literal_entries(scalar_entries(model.output, model), model))
    if output != model.output:
        where = tuple((n, drop_idle_limits(literal_entries(scalar_entries(e, model), model))) for n, e in model.where)
        model = replace(model, output=output, where=where)
    gradients = []
    for inp in model.differentiable_inputs:
        with step(f"differentiating by {inp.name}", model):
            try:
                gradient = derive_input(model, inp, model.output)
            except DerivationError as error:
                source = f" ({model.source})" if model.source else ""
                raise DerivationError(f"operator {model.name!r}{source}, derivative by {inp.name}: {error}") from None
            check_size("a derivative", gradient.steps[-1].expr, gradient.jacobian, gradient.vjp, gradient.jvp)
        gradients.append(gradient)
    return Derivation(model=model, gradients=tuple(gradients))
