"""What an operator model is: named inputs with their axes, index ranges, parameters, output entry.

A model holds maths only.  It states one output entry ``y[i...]`` as a SymPy expression of
``Indexed`` inputs and ``Sum`` reductions over ``Idx`` indices with symbolic sizes; leading batch
dimensions are implicit and broadcast.  The differentiator and the printers read nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sympy as sp


def size(name: str) -> sp.Symbol:
    """A symbolic axis length (a positive integer)."""
    return sp.Symbol(name, integer=True, positive=True)


def index(name: str, dim: sp.Symbol) -> sp.Idx:
    """An index running over ``0 .. dim-1``."""
    return sp.Idx(name, dim)


def free_sizes(dims) -> tuple[sp.Symbol, ...]:
    """The axis lengths a sampler may choose a value for: the symbols, never a literal (an axis of
    length 1 stays 1)."""
    return tuple(d for d in dims if not sp.sympify(d).is_number)


def dim_of(idx: sp.Idx) -> sp.Expr:
    """The axis length an index runs over."""
    return sp.simplify(idx.upper - idx.lower + 1)


class ScalarEntry(sp.Indexed):
    """The one entry of a scalar input (``Input("alpha", ())``, written ``alpha[()]``): an
    ``Indexed`` with no indices, so the differentiator and the printers treat it as any entry."""

    def __new__(cls, base: sp.IndexedBase | str) -> ScalarEntry:
        return sp.Expr.__new__(cls, sp.IndexedBase(base) if isinstance(base, str) else base)

    def _sympystr(self, printer) -> str:
        return printer._print(self.base)

    def _latex(self, printer) -> str:
        return printer._print(self.base.label)

    def _pretty(self, printer):
        return printer._print(self.base.label)


@dataclass(frozen=True)
class Input:
    """One tensor input: its name, its core axes (sizes) and how it may be passed."""

    name: str
    dims: tuple[sp.Symbol, ...]
    differentiable: bool = True
    optional: bool = False
    default: float | None = None
    """Value an optional input takes when passed as ``None`` (1 for a scale, 0 for a shift)."""
    domain: str | sp.Set = "real"
    """Where the input lives (``domains.py``): "real", "positive", "nonnegative", "nonzero",
    "simplex" (a probability vector along the last axis), "index" (class labels), or a SymPy set,
    ``sp.Interval(0, 1)`` or ``sp.Range(0, 10)``.  Every proof and test draws its values inside it."""
    index_of: sp.Symbol | None = None
    """For an "index" input: the axis size its values index into (class labels < C)."""

    @property
    def base(self) -> sp.IndexedBase:
        return sp.IndexedBase(self.name)

    def __getitem__(self, idx: object) -> sp.Indexed:
        indices = idx if isinstance(idx, tuple) else (idx,)
        if not indices and not self.dims:
            return ScalarEntry(self.base)
        if len(indices) != len(self.dims):
            raise ValueError(f"input {self.name!r} has {len(self.dims)} axes, indexed with {len(indices)}")
        return self.base[indices]


@dataclass(frozen=True)
class Param:
    """A keyword parameter (a scalar the output depends on, not differentiated)."""

    name: str
    default: float | int | str | bool | None
    symbol: sp.Symbol | None = None
    doc: str = ""
    choices: tuple = ()
    """For a parameter that selects the formula (gelu's ``approximate``): the values it may take.
    The model factory takes it as a keyword argument and builds one model per choice."""
    required: bool = False
    """A keyword the caller must give (group_norm's ``num_groups``); ``default`` is then unused."""
    domain: str | sp.Set | None = None
    """Where the parameter lives, as an input's ``domain``; None: the proofs draw it in (0.2, 1)."""


@dataclass(frozen=True)
class Layout:
    """How real arrays map onto the model's core axes.

    ``last``: the model's core axes are the trailing axes of every input (batch dims lead).
    ``axis``: a one-axis model whose axis is the integer parameter ``param`` (and whose reduced
    output keeps that axis when the boolean parameter ``keepdims`` is true).
    ``elementwise``: every entry on its own; inputs broadcast against each other like NumPy.
    ``flatten``: inputs broadcast against each other, then flattened onto the model's one axis.
    ``channels``: x of shape (N, C, *spatial) viewed as (N, C, S); per-channel inputs of shape (C,).
    ``groups``: as ``channels`` with C split into ``param`` groups: x as (N, G, C/G, S), and the
    per-channel inputs as (G, C/G).

    A model that declares no layout gets one inferred where only one fits what it says
    (``infer_layout``): ``axis`` when every input has the same single axis and the model has an
    integer parameter named ``axis`` (with ``keepdims`` when it also has a boolean one of that name);
    ``elementwise`` when every input has the output's single axis and each output entry uses the
    same entry of every input and no sum; ``last`` otherwise.  ``flatten``, ``channels`` and ``groups``
    are never inferred: they are choices about how a caller's arrays are read, so a model declares them.
    """

    kind: str = "last"
    param: str | None = None
    keepdims: str | None = None


@dataclass(frozen=True)
class OperatorModel:
    """An operator written once in index notation."""

    name: str
    summary: str
    category: str
    inputs: tuple[Input, ...]
    output_indices: tuple[sp.Idx, ...]
    output: sp.Expr
    params: tuple[Param, ...] = ()
    layout: Layout = None  # type: ignore[assignment]  # None is replaced in __post_init__
    """How arrays map onto the core axes; None (the default): inferred by ``infer_layout``, so a
    constructed model's layout is always a ``Layout``."""
    shift_invariant: tuple[tuple[str, sp.Symbol], ...] = ()
    """(input, axis): adding a constant along that axis leaves the output unchanged (softmax), so
    kernels subtract the maximum along it first, which keeps exp from overflowing."""
    where: tuple[tuple[str, sp.Expr], ...] = ()
    """Named intermediate quantities (mean, rms ...), used to display results, innermost first."""
    torch: str = ""
    cite: tuple[str, ...] = ()
    """BibTeX keys (of templates/latex/derive.bib.jinja) of the papers that introduced the operator;
    the documents cite them, and PyTorch's derivative formulas where ``torch`` is given."""
    notes: tuple[str, ...] = ()
    source: str = ""
    origin: str = field(default="", compare=False, repr=False)
    """Where the loader found the model, set by the registry (never by the model): ``builtin``, an
    installed package's entry point, or a model file's real path and the digest of its text
    (``registry.file_origin``).  What a model's kernels and cache entries are keyed by: two files
    that define one operator name are two operators."""

    def __post_init__(self) -> None:
        if isinstance(self.output, (int, float)) and not isinstance(self.output, bool):
            object.__setattr__(self, "output", sp.Number(self.output))  # a plain number (never text)
        if self.layout is None:
            object.__setattr__(self, "layout", infer_layout(self))

    def input(self, name: str) -> Input:
        for inp in self.inputs:
            if inp.name == name:
                return inp
        raise KeyError(f"operator {self.name!r} has no input {name!r}")

    @property
    def differentiable_inputs(self) -> tuple[Input, ...]:
        return tuple(inp for inp in self.inputs if inp.differentiable)

    @property
    def param_symbols(self) -> dict[str, sp.Symbol]:
        return {p.name: p.symbol for p in self.params if p.symbol is not None}

    @property
    def output_dims(self) -> tuple[sp.Expr, ...]:
        return tuple(dim_of(i) for i in self.output_indices)

    def dims(self) -> tuple[sp.Symbol, ...]:
        """Every core axis length, in first-seen order: output axes, then input axes."""
        seen: list[sp.Symbol] = []
        for d in (*self.output_dims, *(d for inp in self.inputs for d in inp.dims)):
            if d not in seen:
                seen.append(d)
        return tuple(seen)


LAYOUTS = ("last", "axis", "elementwise", "flatten", "channels", "groups")


def one_axis(model: OperatorModel) -> bool:
    """Every input has the same single core axis."""
    return len({inp.dims for inp in model.inputs}) == 1 and len(model.inputs[0].dims) == 1


def entrywise(model: OperatorModel) -> bool:
    """Each output entry y[i] uses entry i of every input and no sum (a one-axis model)."""
    if not one_axis(model) or len(model.output_indices) != 1:
        return False
    i = model.output_indices[0]
    return (model.output_dims == model.inputs[0].dims and not model.output.has(sp.Sum)
            and all(entry.indices == (i,) for entry in model.output.atoms(sp.Indexed)))


def infer_layout(model: OperatorModel) -> Layout:
    """The layout of a model that declares none (the rules are in ``Layout``'s docstring)."""
    params = {p.name: p.default for p in model.params}
    if one_axis(model) and isinstance(params.get("axis"), int) and not isinstance(params["axis"], bool):
        return Layout("axis", "axis", "keepdims" if isinstance(params.get("keepdims"), bool) else None)
    return Layout("elementwise") if entrywise(model) else Layout()


ModelFactory = Callable[[], OperatorModel]
