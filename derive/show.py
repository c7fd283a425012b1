"""``derive show``: an operator's derivation in the terminal, in the documents' notation.

``show_text`` prints the definition and, by each input, the Jacobian entry, VJP and JVP; with
``order=2`` the second order instead (``second_order_lines``): for each differentiable input x the VJP
x̄ that is differentiated, each Hessian block ∂x̄[k]/∂b[m] by an input b whose tangent reaches it (in
compact form where that is lighter; a block too long for the terminal is named, not printed), and last
the derivative of x̄ along the tangents, x̄̇ (``dot_dx`` with ``--ascii``): the kernels' ``vjp_jvp``.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp
from sympy.printing.pretty.stringpict import prettyForm

from . import api
from .calculus.compact import compact
from .calculus.pipeline import Derivation, tangent_name
from .calculus.rename import renamed
from .display.forms import NotationPrettyPrinter, compact_readable, intermediate_symbols, readable
from .display.notation import bar, second_order_name, unicode_name
from .model import OperatorModel
from .targets.latex.view import output_name

BLOCK_LINES = 30
"""A Hessian block printed in more terminal lines than this is named instead of printed."""
COMPACT_OPS = 120
"""A block of at most this many operations is also tried in compact form (through y or x̂)."""


def second_order_lines(derivation: Derivation, printer, line: Callable[..., str], name: Callable[[str], str],
                       ascii_only: bool) -> list[str]:
    """The second-order part of ``derive show``: per input its VJP, Hessian blocks and ``vjp_jvp``."""
    model = derivation.model
    partial = "d" if ascii_only else "∂"
    out = [f"second order: each VJP differentiated along the tangents, {name('dy')} held fixed "
           f"({second_order_name('x', 'ascii' if ascii_only else 'unicode')}[k] = sum over inputs b and m of "
           f"{partial}{'dx' if ascii_only else bar('x')}[k] / {partial}b[m] * {name('dot_b')}[m]: vjp_jvp)"]
    for gradient in derivation.gradients:
        a, wrt = gradient.input.name, gradient.wrt_indices
        cotangent = f"d{a}" if ascii_only else bar(name(a))
        entry = f"{cotangent}{list(wrt)}" if wrt else cotangent
        out.append(f"with respect to {a}:")
        vjp = derivation.compact(a, "vjp")
        out.append(line(f"  vjp       {entry} = ", compact_readable(vjp.expr, model), False))
        terms = derivation.second_order(a)
        for term in terms:
            label = f"  by {term.by.name}:   {partial}{entry} / {partial}{printer.doprint(term.wrt)} = "
            block = _block(derivation, term.hessian, label, line)
            if block.count("\n") + 1 > BLOCK_LINES:
                block = (f"  by {term.by.name}:   {partial}{entry} / {partial}{printer.doprint(term.wrt)} has "
                         f"{sp.count_ops(term.hessian)} operations, too long to print; its contraction is in "
                         f"vjp_jvp below (and in the derivation document)")
            out.append(block)
        idle = [g.input.name for g in derivation.gradients if g.input.name not in {t.by.name for t in terms}]
        if idle:
            out.append(f"  the tangent{'s' if len(idle) > 1 else ''} of {', '.join(idle)} do"
                       f"{'' if len(idle) > 1 else 'es'} not reach {cotangent}")
        second = second_order_name(a, "ascii" if ascii_only else "unicode", None if ascii_only else name(a))
        target = f"{second}{list(wrt)}" if wrt else second
        if not terms:
            out.append(f"  vjp_jvp   {target} = 0")
            continue
        form = derivation.compact(a, "vjp_jvp")
        out.append(line(f"  vjp_jvp   {target} = ", compact_readable(form.expr, model), False))
    return out


def _block(derivation: Derivation, hessian: sp.Expr, label: str, line: Callable[..., str]) -> str:
    """The block in compact form where that is lighter (short blocks only), else with named quantities."""
    if sp.count_ops(hessian) <= COMPACT_OPS:
        form = compact(hessian, derivation.rewriter, derivation.model.dims())
        if form.expr != hessian:
            return line(label, compact_readable(form.expr, derivation.model), False)
    return line(label, hessian)


def _written_through(derivation) -> list[tuple[tuple[str, str], sp.Expr]]:
    """(x_hat or y, its definition) for each name a shown compact form is written through (not y
    itself when it is the output: the definition above says it)."""
    found: dict[tuple[str, str], sp.Expr] = {}
    for gradient in derivation.gradients:
        for kind in ("vjp", "jvp"):
            form = derivation.compact(gradient.input.name, kind)
            if form.through and form.through != "y":
                found.setdefault((form.through, str(list(derivation.model.output_indices))), form.definition)
    return list(found.items())


def show_text(model: OperatorModel, width: int = 100, ascii_only: bool = False, order: int = 1) -> str:
    """The definition, and the Jacobian entry, VJP and JVP by each input, in the documents' notation
    (ȳ the cotangent, x̄ an input's, ẋ a tangent; ``ascii_only``: the names claims are typed in);
    ``order`` 2: the second order instead (``show_second.py``)."""
    derivation = api.derive(model)
    clashes = renamed(model)
    model = derivation.model  # in the notation's names (a clashing name is renamed, calculus/rename.py)
    output = output_name(model)
    printer = NotationPrettyPrinter(output, {"use_unicode": not ascii_only, "num_columns": width})

    def line(label: str, expr: sp.Expr, named: bool = True) -> str:
        form = printer._print(readable(expr, model) if named else expr)
        return prettyForm(*form.left(label)).render(wrap_line=True, num_columns=width, use_unicode=not ascii_only)

    def name(code: str) -> str:
        return code if ascii_only else unicode_name(code, output)

    shapes = ", ".join(f"{i.name}{list(i.dims)}" + (" (optional)" if i.optional else "") for i in model.inputs)
    params = ", ".join(f"{p.name}={p.default!r}" + (f" (symbol {name(str(p.symbol))})" if p.symbol is not None and
                       str(p.symbol) != p.name else "") for p in model.params) or "none"
    out = [f"{model.name}: {model.summary}\ninputs: {shapes}\nparameters: {params}", "definition:"]
    if clashes:  # a name the notation uses: written otherwise here
        out.insert(1, "renamed: " + ", ".join(f"{old} is written {new}" for old, new in clashes.items()))

    def at(name: str, indices) -> str:  # y[i], or y for a scalar
        return f"{name}{list(indices)}" if indices else name

    outputs = model.output_indices
    out += [line(f"{at(output, outputs)} = ", model.output)]
    for symbol, definition in intermediate_symbols(model):
        out += [line(f"  where {printer.doprint(symbol)} = ", definition, named=False)]
    for (through, through_at), definition in _written_through(derivation):
        out += [line(f"  where {name(through)}{through_at} = ", compact_readable(definition, model), False)]
    if order == 2:
        return "\n\n".join(out + second_order_lines(derivation, printer, line, name, ascii_only))
    partial = "d" if ascii_only else "∂"
    for gradient in derivation.gradients:
        wrt = printer.doprint(gradient.wrt)
        cotangent = f"d{gradient.input.name}" if ascii_only else bar(name(gradient.input.name))
        out += [f"with respect to {gradient.input.name}:"]
        out += [line(f"  Jacobian  {partial}{at(output, outputs)} / {partial}{wrt} = ", gradient.jacobian)]
        vjp, jvp = derivation.compact(gradient.input.name, "vjp"), derivation.compact(gradient.input.name, "jvp")
        out += [line(f"  vjp       {at(cotangent, gradient.wrt_indices)} = ", compact_readable(vjp.expr, model), False)]
        out += [line(f"  jvp       {at(name(tangent_name(output)), outputs)} += ", compact_readable(jvp.expr, model),
                     False)]
    return "\n\n".join(out)
