"""Print one kernel function (forward, vjp, jvp, vjp_jvp) of array code, for any ``FramePrinter``:
its outputs stabilised and scheduled (``derive.schedule``), lowered in place where the printer
updates arrays (NumPy), each temporary freed after its last use where it does not (Array API).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sympy as sp

from ...calculus.indices import bound_indices, free_indices, fresh_index, index_names, substitute_index
from ...calculus.pipeline import COTANGENT
from ...model import OperatorModel, dim_of
from ...schedule.centring import refine_means
from ...schedule.cse import Output, Scheduled, schedule
from ...schedule.inplace import Lowered, Step, _renumber
from ...schedule.inplace import in_place as lower_in_place
from ...schedule.stable import stabilize
from ...schedule.tangents import names_in, tangents_private
from .printer import FramePrinter, check_separable


@dataclass(frozen=True)
class Statement:
    """``target op code``: an assignment (``=``) or an in-place update (``+=``, ``*=``, ...)."""

    target: str
    code: str
    op: str = "="


@dataclass(frozen=True)
class Block:
    """Statements computing one result; ``guard`` is the condition (code) under which it is computed."""

    input: str
    guard: str | None
    statements: tuple[Statement, ...]
    result: str
    positions: str
    """Frame positions of the result's axes (a Python tuple literal)."""
    keywords: str = ""
    """Extra keyword arguments of the runtime call taking the result: ``, scale=<per-row factor>``
    when it applies the result's last factor, ``, owned=True`` when the result is an array this call
    built, which it may add other terms into."""
    release: str = ""
    """Full-size temporaries of this block to ``del`` once its result is taken (a target that
    updates nothing in place frees them before the next block allocates its own)."""


@dataclass(frozen=True)
class Function:
    prelude: tuple[Statement, ...]
    blocks: tuple[Block, ...]


def function(outputs: list[Output], printer: FramePrinter, positions: dict[str, str],
             model: OperatorModel, lowering: str, tangents: dict[str, str] | None = None,
             inputs: dict[str, str] | None = None) -> Function:
    """Print one kernel function.  ``lowering`` says which arrays are updated in place (see
    ``inplace.py``): "cotangent" (a vjp) those computed from the cotangent, "second" (a vjp_jvp) the
    same, its results marked ``owned`` for the runtime to add terms into, "output" (a jvp's terms)
    each result, built in a new array shaped like the output, "forward" the same, its result
    returned as it is.  ``tangents`` (a vjp_jvp)
    maps each output to the tangent it needs (``tangents_private``), ``inputs`` to the input whose
    entry its block adds to (else the block's input is the output's name)."""
    outputs = [Output(o.name, by_axis(stable_form(o.expr, model)), o.guard) for o in outputs]
    plan = schedule(outputs)
    if tangents is not None:
        plan = tangents_private(plan, tangents)
    guarded = frozenset(o.name for o in outputs if o.guard)
    owned = _owned_inputs(model, printer)
    if not printer.in_place:
        lowered = _as_scheduled(plan)
    elif lowering in ("cotangent", "second"):
        lowered = lower_in_place(plan, COTANGENT, owned, guarded, f"{printer.namespace}.empty_like({COTANGENT})")
    else:  # no expression names the output: "<output>" is not an identifier
        spans = frozenset(free_indices(next(iter(plan.results.values()))))
        lowered = lower_in_place(plan, "<output>", owned, guarded, OUTPUT_ARRAY, spans)
    for step in (*lowered.prelude, *(s for own in lowered.own.values() for s in own)):
        printer.declare(step.symbol, step.expr)

    release = not printer.in_place  # every operation allocates: free each temporary after its last use

    def statements(steps, keep: set[str]) -> tuple[Statement, ...]:
        printed = [Statement(str(step.symbol), printer.print_into(step.expr, _into(step.out)) if step.out
                             else printer.doprint(step.expr), step.op) for step in steps]
        return _released(printed, steps, keep) if release else tuple(printed)

    def block(o: Output) -> Block:
        steps, result = lowered.own[o.name], lowered.results[o.name]
        freed = [n for n in _full_size(steps) if n in names_in(result)] if release else []
        return Block((inputs or {}).get(o.name, o.name), o.guard, statements(steps, names_in(result)),
                     printer.doprint(result), positions[o.name], _keywords(o.name, lowered, printer, lowering),
                     ", ".join(freed))

    later = set().union(*(names_in(step.expr) for own in lowered.own.values() for step in own),
                        *(names_in(result) for result in lowered.results.values()))
    return Function(prelude=statements(lowered.prelude, later), blocks=tuple(block(o) for o in outputs))


def _full_size(steps) -> list[str]:
    """The temporaries ``steps`` define that span an axis (per-row statistics and scalars are small)."""
    return list(dict.fromkeys(str(s.symbol) for s in steps if s.op == "=" and free_indices(s.expr)))


def _released(printed: list[Statement], steps, keep: set[str]) -> tuple[Statement, ...]:
    """``printed`` with ``del name`` after the last statement reading each full-size temporary the
    steps define, unless ``keep`` (what later code reads) names it."""
    last = {name: position for position, step in enumerate(steps) for name in names_in(step.expr)}
    out: list[Statement] = []
    dead: list[list[str]] = [[] for _ in steps]
    for name in _full_size(steps):
        if name not in keep and name in last:
            dead[last[name]].append(name)
    for statement, names in zip(printed, dead):
        out.append(statement)
        if names:
            out.append(Statement(f"del {', '.join(names)}", "", ""))
    return tuple(out)


@functools.lru_cache(maxsize=512)
def stable_form(expr: sp.Expr, model: OperatorModel) -> sp.Expr:
    """``expr`` stabilised, its means refined and dependent sums merged: the same for every printer,
    so worked out once for the NumPy and the Array API view (the second order's are large)."""
    return merge_dependent_sums(refine_means(stabilize(expr, model), model))


def _keywords(name: str, lowered: Lowered, printer: FramePrinter, lowering: str) -> str:
    """The extra keyword arguments of the runtime call that takes output ``name`` (see ``Block``)."""
    if not printer.in_place:  # a result that is an argument (or another result) as it is gets copied
        return ", copy=True" if isinstance(lowered.results[name], (sp.Indexed, sp.Symbol)) else ""
    if name in lowered.scales:
        return f", scale={printer.doprint(lowered.scales[name])}"
    if lowering == "forward":  # the runtime's _output returns the array it is given
        return ""
    return ", owned=True" if lowering in ("output", "second") and name in lowered.owned else ""


def _as_scheduled(plan: Scheduled) -> Lowered:
    """The schedule as it is, for a printer that updates nothing in place."""
    return _renumber(Lowered(tuple(Step(s, e) for s, e in plan.prelude),
                             {name: tuple(Step(s, e) for s, e in own) for name, own in plan.own.items()},
                             plan.results))


OUTPUT_ARRAY = "_new_output(ctx)"
"""Code for a new array shaped like the output (as the frame lays it out), to build a result in."""


def _owned_inputs(model: OperatorModel, printer: FramePrinter) -> tuple[str, ...]:
    """Inputs the kernel shifts into a copy of its own and which sit on the frame as they are."""
    names = dict.fromkeys(name for name, _ in model.shift_invariant)
    return tuple(name for name in names if printer.place(name, model.input(name).dims) == name)


def _into(out: str) -> str:
    """The ``out=`` of an in-place step: a new array as printed, or a dead temporary through the
    runtime's ``_into``, which passes it on only if it is an array (the temporaries of 0-d inputs
    are NumPy scalars, which no ufunc writes into)."""
    return f"_into({out})" if out.isidentifier() else out


def merge_dependent_sums(expr: sp.Expr) -> sp.Expr:
    """sum_e f_e (sum_j g_je) -> sum_e sum_j f_e g_je when the inner sum depends on e.

    The inner sum must be built for every e anyway; as one sum it becomes one einsum, which
    contracts in the best order instead of materialising the inner sum over all its free axes.
    """
    if not expr.args or not expr.has(sp.Sum):
        return expr
    expr = expr.func(*[merge_dependent_sums(arg) for arg in expr.args])
    if not isinstance(expr, sp.Sum):
        return expr
    own = set(bound_indices(expr))
    factors = list(sp.Mul.make_args(expr.function))
    for position, factor in enumerate(factors):
        if isinstance(factor, sp.Sum) and free_indices(factor) & own:
            taken = index_names(expr)
            inner, limits = factor.function, []
            for var, lower, upper in factor.limits:
                new = fresh_index(var, taken)
                taken.add(str(new.label))
                inner = substitute_index(inner, var, new)
                limits.append((new, lower, upper))
            rest = factors[:position] + factors[position + 1:]
            body = sp.Mul(*rest) * inner
            dims = [dim_of(i) for i in free_indices(body)]
            if len(dims) == len(set(dims)):  # merging must not couple two indices of one size
                return merge_dependent_sums(sp.Sum(body, *expr.limits, *limits))
    return expr


def by_axis(expr: sp.Expr) -> sp.Expr:
    """Name every index after its axis, so CSE sees exp(x[j]) and exp(x[k]) as one array.

    Safe once no sum body and no result couples two indices of one size (checked first).
    """
    check_separable(expr)
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Sum):
            check_separable(node.function)
    return expr.xreplace({i: sp.Idx(axis_variable(dim_of(i)), (i.lower, i.upper)) for i in expr.atoms(sp.Idx)})


def axis_variable(dim: sp.Expr) -> str:
    """The index named after its axis: ``n_`` over n, ``axis1_`` over a literal axis of length 1."""
    return f"{dim}_" if str(dim).isidentifier() else f"axis{dim}_"
