"""The checked matrix-form equations of one input's Jacobian, printed in vector notation."""

from __future__ import annotations

import sympy as sp
from sympy.printing.precedence import PRECEDENCE

from ...calculus.pipeline import InputGradient
from ...display.latex import NotAVectorError, VectorLatexPrinter
from ...display.layout import LINE_WIDTH, pack_terms, tex_width, text_fractions
from .equations import Equations, Row, rows
from .matrix_form import MatrixForm, MatrixTerm, entries, factored_entries, matrix_form, written_through
from .symbols import SHOWN_HAT


def matrix_rows(eqs: Equations, gradient: InputGradient, label: str,
                diagonal: bool | None = None, factored_only: bool = False) -> tuple[str, tuple[Row, ...]]:
    """(introductory sentence, rows labelled ``label`` and ``label-factored``), or ('', ()) when the
    Jacobian has no matrix form, or one that is (``diagonal`` True) or is not (False) diagonal.
    ``factored_only``: one form only, the narrower of the two (the result's: the form a paper cites)."""
    model = eqs.model
    if len(model.output_indices) != 1 or len(gradient.wrt_indices) != 1:
        return "", ()
    i, k = model.output_indices[0], gradient.wrt_indices[0]
    jacobian = eqs.shown(gradient.jacobian)
    form = matrix_form(jacobian, i, k, eqs.shown(model.output), eqs.output_base[i])
    if form is None or (diagonal is not None and all(t.diagonal for t in form.terms) != diagonal):
        return "", ()
    if SHOWN_HAT in eqs.written_through:  # x_hat defined above: (x - mu 1)(x - mu 1)^T / sigma^2 is x_hat x_hat^T
        centred, scale = sp.fraction(sp.together(eqs.shown(eqs.written_through[SHOWN_HAT][0])))
        form = written_through(form, i, sp.expand(centred), scale, sp.IndexedBase(SHOWN_HAT)[i])
    printer = VectorLatexPrinter(i, eqs.output_name, letters=eqs.printer.letters)
    try:
        plain = _terms_tex(printer, eqs, form.terms)
        factored = _factored_tex(printer, eqs, form) if form.factored else None
    except NotAVectorError:
        return "", ()
    output_tex = eqs.printer._print(sp.Symbol(eqs.output_name))
    lhs_tex = (rf"\frac{{\partial {printer.bold(output_tex)}}}"
               rf"{{\partial {printer.bold(eqs.printer.base_name(gradient.input.name))}}}")
    if factored is not None and factored_only:  # the narrower: softmax's diag(y) - y y^T, a norm's factored form
        if tex_width(" ".join(factored)) < tex_width(" ".join(pack_terms(plain))):
            lines = [text_fractions(line) for line in factored]  # as the result's other lines
            equations = [_add(eqs, f"{label}-factored", gradient, factored_entries(form, i, k), lhs_tex, lines)]
        else:
            equations = [_add(eqs, label, gradient, entries(form.terms, i, k), lhs_tex,
                              [text_fractions(line) for line in pack_terms(plain)])]
        return _intro(eqs, i, k), rows(equations)
    equations = [_add(eqs, label, gradient, entries(form.terms, i, k), lhs_tex, pack_terms(plain))]
    if factored is not None:
        equations.append(_add(eqs, f"{label}-factored", gradient, factored_entries(form, i, k), lhs_tex, factored))
    return _intro(eqs, i, k), rows(equations, chained=True)


def _intro(eqs: Equations, i: sp.Idx, k: sp.Idx) -> str:
    return (f"As a matrix (row ${eqs.printer.index_text(i)}$, column ${eqs.printer.index_text(k)}$; "
            f"bold: vectors)")


def _add(eqs: Equations, label: str, gradient: InputGradient, named_entries: sp.Expr, lhs_tex: str,
         lines: list[str]):
    """Check the matrix's entries against the Jacobian, then keep the equation in matrix notation."""
    return eqs.add(label, "matrix", gradient.jacobian, eqs.unname(named_entries), shown_lhs=gradient.jacobian,
                   shown_rhs=named_entries, lhs_tex=lhs_tex, rhs_lines=lines, input=gradient.input.name, by_rules=True)


def _term_tex(printer: VectorLatexPrinter, term: MatrixTerm) -> str:
    if term.diagonal:
        return r"I" if term.left == 1 else rf"\operatorname{{diag}}\left({printer.doprint(term.left)}\right)"
    return f"{_vector(printer, term.left)} {_vector(printer, term.right)}^{{T}}"


def _vector(printer: VectorLatexPrinter, entry: sp.Expr) -> str:
    if entry == 1:
        return printer.bold("1")
    tex = printer.doprint(entry)
    bracket = isinstance(entry, sp.Add) or r"\odot" in tex or "^" in tex  # then ^T needs the brackets
    return rf"\left({tex}\right)" if bracket else tex


def _terms_tex(printer: VectorLatexPrinter, eqs: Equations, terms: tuple[MatrixTerm, ...]) -> list[tuple[str, str]]:
    """(sign, LaTeX) of each matrix term: its scalar coefficient, then the matrix."""
    out = []
    for term in terms:
        coefficient, sign = term.coefficient, "+"
        if coefficient.could_extract_minus_sign():
            coefficient, sign = -coefficient, "-"
        scale = "" if coefficient == 1 else eqs.printer.parenthesize(coefficient, PRECEDENCE["Mul"], strict=True) + " "
        out.append((sign, scale + _term_tex(printer, term)))
    return out


def _factored_tex(printer: VectorLatexPrinter, eqs: Equations, form: MatrixForm) -> list[str]:
    """scale diag(common) [inner], the bracket broken over lines where it is too wide for one."""
    assert form.factored is not None  # called on factored forms only
    scale, common, inner = form.factored
    head = "" if scale == 1 else eqs.printer.parenthesize(scale, PRECEDENCE["Mul"], strict=True) + " "
    head += rf"\operatorname{{diag}}\left({printer.doprint(common)}\right)"
    lines = pack_terms(_terms_tex(printer, eqs, inner), LINE_WIDTH - 2)
    if len(lines) == 1:
        return [rf"{head} \left[{lines[0]}\right]"]
    return [head, rf"\cdot \Bigl[{lines[0]}", *lines[1:-1], rf"{lines[-1]}\Bigr]"]
