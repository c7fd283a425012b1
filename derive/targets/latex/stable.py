"""The numerical section: the stable form the kernel uses (a checked shift invariance, or exponentials
shifted by their maximum), the derivative conventions at kinks, and the model's notes."""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ...calculus.equality import check_equal
from ...calculus.indices import free_indices
from ...calculus.pipeline import Derivation
from ...display.layout import INDENT, MIN_WIDTH, TEXT_WIDTH, break_lines, tex_width
from ...model import OperatorModel
from ...model.functions import max_over, sigmoid, softplus
from ...schedule.stable import stabilize
from .equations import DEFINITION, Equations, Row, rows
from .maths_text import maths_text
from .text import label_part

CONVENTIONS: tuple[tuple[type, str], ...] = (
    (sp.Abs, "The derivative of $|u|$ is taken as $\\operatorname{sign}(u)$, which is $0$ at $u = 0$, "
             "as the backward pass of \\texttt{torch.abs}."),
    (sp.sign, "$\\operatorname{sign}(u)$ (with $\\operatorname{sign}(0) = 0$) has derivative $0$ everywhere, "
              "as \\texttt{torch.sign}."),
    (sp.Max, "At a tie of $\\max(u, c)$ with a bound $c$ that holds no input, the whole gradient goes to $u$, "
             "as \\texttt{torch.clamp\\_min}; at a tie of expressions of the inputs it is split evenly among "
             "them, as \\texttt{torch.maximum} (two) and \\texttt{torch.amax} (several)."),
    (sp.Min, "At a tie of $\\min(u, c)$ with a bound $c$ that holds no input, the whole gradient goes to $u$, "
             "as \\texttt{torch.clamp\\_max}; at a tie of expressions of the inputs it is split evenly among "
             "them, as \\texttt{torch.minimum} (two) and \\texttt{torch.amin} (several)."),
    (max_over, "The gradient of a maximum over an axis goes to the entries equal to it, split evenly among "
              "ties, as \\texttt{torch.amax}."),
    (sp.Piecewise, "At the boundary of a piecewise definition, the derivative is that of the branch that "
                   "holds there (the first whose condition is true), the branch the forward pass takes."),
)
"""What the derivative is at a kink, for each function that has one, as the documents state it (LaTeX)."""


STABLE_FUNCTIONS: tuple[tuple[type, str], ...] = (
    (softplus, r"The kernel evaluates $\operatorname{softplus}(u) = \log(1 + e^{u})$ as "
               r"\texttt{numpy.logaddexp(0, u)}, "
               r"that is $\max(u, 0) + \log\bigl(1 + e^{-|u|}\bigr)$ with the logarithm taken by \texttt{log1p}: the "
               r"exponent is never positive, so nothing overflows for large $u$, and for very negative $u$ the tiny "
               r"$e^{u}$ is not lost against $1$."),
    (sigmoid, r"The kernel evaluates $\sigma(u) = 1 / (1 + e^{-u})$ with \texttt{scipy.special.expit}, which takes "
              r"$e^{-u}$ for $u \ge 0$ and $e^{u} / (1 + e^{u})$ for $u < 0$: no exponential of a large positive "
              r"number is formed, so $\sigma$ is finite and accurate for every $u$."),
)
"""How the NumPy kernels evaluate the functions they print stably, as the documents state it (LaTeX)."""


def conventions(expr: sp.Expr) -> tuple[str, ...]:
    """The ``CONVENTIONS`` sentences for the functions with kinks that ``expr`` uses."""
    return tuple(text for kind, text in CONVENTIONS if expr.atoms(kind))


@dataclass(frozen=True)
class StableView:
    rows: tuple[Row, ...]
    text: str
    notes: tuple[str, ...]


def shift_axes(model: OperatorModel) -> list[tuple[str, sp.Expr | None]]:
    """(input, axis) for each declared shift invariance; axis None: one shift for every entry.

    A declaration is an input name, or (input name, axis length) for a shift along that axis.
    """
    return [(entry, None) if isinstance(entry, str) else (entry[0], entry[1]) for entry in model.shift_invariant]


def shift_base(model: OperatorModel) -> str:
    """A name for the shift that no index or input of the model uses."""
    taken = {str(i.label) for i in model.output.atoms(sp.Idx)} | {inp.name for inp in model.inputs}
    return next(name for name in ("c", "s", "m", "a", "h") if name not in taken)


def shifted(expr: sp.Expr, model: OperatorModel, input_name: str, axis: sp.Expr | None) -> sp.Expr:
    """``expr`` with the entries of the input moved by an amount that is the same along ``axis``
    (c, or c indexed by the entry's other indices when the input has more axes)."""
    dims = model.input(input_name).dims
    along = dims.index(axis) if axis is not None and axis in dims else None
    base = shift_base(model)

    def move(entry: sp.Indexed) -> sp.Expr:
        others = [i for position, i in enumerate(entry.indices) if along is not None and position != along]
        amount = sp.IndexedBase(base)[tuple(others)] if others else sp.Symbol(base, real=True)
        return entry - amount

    return expr.replace(lambda e: isinstance(e, sp.Indexed) and str(e.base) == input_name, move)


def stable_form(eqs: Equations, derivation: Derivation) -> StableView | None:
    """The numerical section: the stable forms the kernel uses (a declared shift invariance, or
    exponentials shifted by their maximum), the conventions at kinks and the model's notes; None
    when there is nothing to say."""
    model = derivation.model
    stable = stabilize(model.output, model)
    kinks = conventions(model.output)
    used = [model.output, *(g.vjp for g in derivation.gradients)]
    functions = [text for kind, text in STABLE_FUNCTIONS if any(e.atoms(kind) for e in used)]
    centred = _two_pass(eqs)
    if not (model.shift_invariant or model.notes or kinks or functions or centred) and stable == model.output:
        return None
    equations, sentences = [], [*centred, *functions]
    if stable != model.output:
        rows_added, sentence = _shifted_output(eqs, stable)
        equations += rows_added
        sentences.append(sentence)
    for name, axis in shift_axes(model):
        label = f"eq:{label_part(model.name)}:stable-{label_part(name)}"
        equations.append(eqs.add(label, "stable", shifted(model.output, model, name, axis), model.output))
        for gradient in derivation.gradients:
            for kind, expr in (("VJP", gradient.vjp), ("JVP", gradient.jvp)):
                check_equal(shifted(expr, model, name, axis), expr, eqs.dims,
                            f"{model.name}: the {kind} for {gradient.input.name} under a shift of {name}", eqs.labels)
        sentences.append(_sentence(eqs, name, axis, label))
    notes = (*kinks, *(maths_text(note, model, eqs.printer) for note in model.notes))
    return StableView(rows(equations), " ".join(sentences), notes)


def _shifted_output(eqs: Equations, stable: sp.Expr) -> tuple[list, str]:
    """The output as the kernel evaluates it, each maximum named m (m_i ...) and defined on its own row."""
    model, op = eqs.model, label_part(eqs.model.name)
    taken = {str(i.label) for i in stable.atoms(sp.Idx)} | {inp.name for inp in model.inputs}
    names = (n for n in ("m", "c", "h", *(f"m{k}" for k in range(1, 10))) if n not in taken)
    rows_added, short = [], {}
    for number, maximum in enumerate(sorted(stable.atoms(max_over), key=str)):
        free = sorted(free_indices(maximum), key=lambda i: str(i.label))
        name = next(names)
        short[maximum] = sp.IndexedBase(name)[tuple(free)] if free else sp.Symbol(name, real=True)
        rows_added.append(eqs.add(f"eq:{op}:stable-max-{number}", DEFINITION, short[maximum], maximum,
                                  shown_lhs=short[maximum], shown_rhs=eqs.shown(maximum)))
    label = f"eq:{op}:stable-output"
    shown = eqs.shown(stable.xreplace(short))
    check_equal(eqs.unname(shown).xreplace({v: k for k, v in short.items()}), stable, eqs.dims,
                f"{model.name}: equation {label} (right side as displayed)", eqs.labels)
    lead = tex_width(eqs.tex(eqs.output_entry)) + 1.6
    lines = break_lines(eqs.printer, shown, max(TEXT_WIDTH - lead - INDENT, MIN_WIDTH))
    rows_added.append(eqs.add(label, "stable", model.output, stable, shown_lhs=eqs.output_entry, rhs_lines=lines))
    logged = any(log.has(max_over) for log in stable.atoms(sp.log))
    shift = "is added back outside the logarithm" if logged else "cancels between numerator and denominator"
    symbols = ", ".join(f"${eqs.tex(symbol)}$" for symbol in short.values())
    return rows_added, (f"The kernel evaluates the output as \\eqref{{{label}}}: from every exponent summed over an "
                        f"axis it subtracts the largest exponent on that axis ({symbols}), so no exponential "
                        f"exceeds $1$; the shift {shift}. The two forms are equal (checked like every step).")


def _sentence(eqs: Equations, name: str, axis: sp.Expr | None, label: str) -> str:
    symbol = eqs.printer.base_name(name)
    several = axis is not None and len(eqs.model.input(name).dims) > 1
    along = f" along its axis of length ${eqs.tex(axis)}$" if several else ""
    amount = eqs.printer._print(sp.Symbol(shift_base(eqs.model)))
    return (f"The output does not change when the entries of ${symbol}${along} all move by the same amount "
            f"${amount}$, "
            f"as \\eqref{{{label}}} shows, and neither do the VJP and JVP above (checked the same way). "
            f"The kernel therefore subtracts the largest entry{along} before it evaluates the forward "
            f"pass, the VJP and the JVP: every value is unchanged, and no shifted entry exceeds 0, so no "
            f"exponential exceeds 1 (unshifted, $e^{{u}}$ overflows float32 from $u \\approx 89$ and float64 from "
            f"$u \\approx 710$)" + (", and a sum of the shifted exponentials holds the term $e^{0} = 1$, so it cannot "
                                     "underflow to 0 either." if eqs.model.output.has(sp.exp) else "."))


def _two_pass(eqs: Equations) -> list[str]:
    """For each named statistic summed over squared centred entries (a variance): how the kernel
    computes it (two passes, from the centred values) and why."""
    sentences = []
    symbols = {symbol for symbol, _ in eqs.named}
    for symbol, definition in eqs.named:
        centres = {base for total in definition.atoms(sp.Sum) for power in total.function.atoms(sp.Pow)
                   if power.exp == 2 and isinstance(power.base, sp.Add)
                   for base in _named_bases(power.base, symbols)}
        for centre in sorted(centres, key=str):
            label = f"eq:{label_part(eqs.model.name)}:where-{label_part(str(symbol))}"
            mean, stat = eqs.tex(centre), eqs.tex(symbol)
            sentences.append(
                f"The kernel computes ${stat}$ as \\eqref{{{label}}} reads, in two passes: first ${mean}$, then the "
                f"squares of the centred entries. It never forms the mean of the squares minus the squared mean, "
                f"which loses every significant digit in floating point when $|{mean}|$ is large against the "
                f"spread of the entries.")
    return sentences


def _named_bases(expr: sp.Expr, symbols: set[sp.Expr]) -> list[sp.Expr]:
    """The named quantities (as written, with their indices) that ``expr`` subtracts."""
    return [term for term in (-t for t in sp.Add.make_args(expr) if t.could_extract_minus_sign())
            if term in symbols or (isinstance(term, sp.Indexed) and any(term.base == getattr(s, "base", None)
                                                                         for s in symbols))]
