"""Break long displayed equations into lines of bounded width.

``tex_width`` estimates how wide a LaTeX math string sets (in units of about one letter: fractions
count their wider part, sub- and superscripts count smaller, a sum's limits sit under it);
``break_lines`` splits a right-hand side at its top-level + and - (and, for a product too wide on
its own, inside its widest bracketed sum) so that no line exceeds the limit where a split exists.
"""

from __future__ import annotations

import re

import sympy as sp
from sympy.printing.precedence import PRECEDENCE

from .latex import DerivationLatexPrinter, DisplayPartial, join_terms
from .means import Mean

TEXT_WIDTH = 27.0
"""Width of a displayed line, in letters: one column of a 10 pt two-column A4 paper (221 pt; a letter
is estimated at up to 8 pt), so every body fits such a column (amsmath puts an equation number that
does not fit beside its line on a line of its own)."""
RESULT_WIDTH = 40.0
"""The same column for a result's lines of products and means (``display.means``, short fractions at
text size): they set at 5.5-6.5 pt a letter (measured with pdflatex on the result fragments), where
sums with limits and exponentials of sums, which the estimate undercounts, need the margin of TEXT_WIDTH."""
RESULT_LEAD = 6.0
"""The least room a result's left sides take (the widest in its block, y-dot^(x)_{ij} =, sets the start)."""
LINE_WIDTH = 24.0
"""Default budget of a right-hand side line."""
LEFT_WIDTH = 10.0
"""A left side wider than this goes on a line of its own (after the name it defines, if any)."""
INDENT = 1.5
"""The indent of a continuation line (``\\quad {}``)."""
MIN_WIDTH = 12.0
"""The least budget a right-hand side line gets, however wide its left side."""

SCRIPT = 0.7
"""A sub- or superscript letter's width in letters."""
_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|[{}_^]|\s+|.")
_GROUPED = {"operatorname", "mathrm", "mathbf", "boldsymbol", "text", "mathit", "bar", "dot", "hat",
            "tilde", "mathbb", "mathcal", "vec", "overline", "textrm", "emph"}
_SPACES = {",": 0.17, ";": 0.28, ":": 0.22, "!": -0.17, "quad": 1.0, "qquad": 2.0,
           "mathop": 0.0, "textstyle": 0.0, "nolimits": 0.0}
_WIDE = {"sum": 1.6, "prod": 1.6, "int": 1.0, "partial": 0.6, "cdot": 0.8, "odot": 1.2, "quad": 1.0,
         "langle": 0.7, "rangle": 0.7}


def tex_width(tex: str) -> float:
    """Estimated set width of a math-mode LaTeX string."""
    width, _ = _sequence(_TOKEN.findall(tex), 0)
    return width


def _sequence(tokens: list[str], at: int) -> tuple[float, int]:
    """Width of tokens from ``at`` up to the matching '}' (or the end); returns (width, next index)."""
    total, previous_big = 0.0, 0.0
    while at < len(tokens):
        token = tokens[at]
        if token == "}":
            return total, at + 1
        if token in "_^":
            script, at = _argument(tokens, at + 1)
            scripted = SCRIPT * script
            if previous_big:  # limits of a sum sit under and over it
                scripted = max(0.0, scripted - previous_big)
                previous_big = max(previous_big, SCRIPT * script)
            total += scripted
            continue
        width, at, big = _atom(tokens, at)
        previous_big = big
        total += width
    return total, at


def _argument(tokens: list[str], at: int) -> tuple[float, int]:
    while at < len(tokens) and tokens[at].isspace():
        at += 1
    if at < len(tokens) and tokens[at] == "{":
        return _sequence(tokens, at + 1)
    width, at, _ = _atom(tokens, at)
    return width, at


def _atom(tokens: list[str], at: int) -> tuple[float, int, float]:
    """(width, next index, width of a big operator whose limits follow, else 0)."""
    token = tokens[at]
    if token.isspace():
        return 0.0, at + 1, 0.0
    if token == "{":
        width, at = _sequence(tokens, at + 1)
        return width, at, 0.0
    if not token.startswith("\\"):
        wide = 1.6 if token in "+-=<>" else 0.5 if token in ",()[]|" else 1.25 if token.isupper() else 1.0
        return wide, at + 1, 0.0  # a capital (P, Z, E) sets about a quarter wider than a small letter
    name = token[1:]
    if name in ("frac", "tfrac"):
        top, at = _argument(tokens, at + 1)
        bottom, at = _argument(tokens, at)
        return max(top, bottom) + 0.4, at, 0.0
    if name in ("left", "right", "bigl", "bigr", "Bigl", "Bigr"):
        _, at = _argument(tokens, at + 1)
        return 0.6, at, 0.0
    if name == "sqrt":
        inner, at = _argument(tokens, at + 1)
        return inner + 1.2, at, 0.0
    if name in _GROUPED:
        inner, at = _argument(tokens, at + 1)
        return inner, at, 0.0
    if name in _SPACES:
        return _SPACES[name], at + 1, 0.0
    if name in ("sum", "prod"):
        return _WIDE[name], at + 1, _WIDE[name]
    return _WIDE.get(name, 1.0), at + 1, 0.0


def text_fractions(tex: str) -> str:
    r"""``tex`` with every \frac of plain letters and roots (no fraction, sum or mean inside) set as \tfrac:
    a result's \frac{\gamma_{i}}{\sigma} at text size, so its line is a text line's height."""
    out, at = [], 0
    while (start := tex.find(r"\frac{", at)) >= 0:
        top_end = _group_end(tex, start + 5)
        bottom_end = _group_end(tex, top_end + 1) if top_end + 1 < len(tex) and tex[top_end + 1] == "{" else -1
        if bottom_end < 0:
            out.append(tex[at:start + 5])
            at = start + 5
            continue
        inner = tex[start + 5:bottom_end + 1]
        plain = not any(macro in inner for macro in (r"\frac", r"\sum", r"\langle", r"\prod"))
        out.append(tex[at:start] + (r"\tfrac" if plain else r"\frac") + inner)
        at = bottom_end + 1
    return "".join(out) + tex[at:]


def _group_end(tex: str, opening: int) -> int:
    """The position of the '}' closing the group that opens at ``opening``."""
    depth = 0
    for position in range(opening, len(tex)):
        depth += {"{": 1, "}": -1}.get(tex[position], 0)
        if depth == 0:
            return position
    return len(tex) - 1


def break_lines(printer: DerivationLatexPrinter, expr: sp.Expr, limit: float = LINE_WIDTH) -> list[str]:
    """The LaTeX of ``expr`` as lines: the first plain, each later one starting with its + or -."""
    if not isinstance(expr, sp.Add):
        return _break_product(printer, expr, limit)
    lines: list[str] = []
    current: list[tuple[str, str]] = []
    for sign, term in printer.ordered_terms(expr):
        tex = printer.term_tex(term)
        if tex_width(join_terms(current + [(sign, tex)], leading=bool(lines))) <= limit:
            current.append((sign, tex))
            continue
        if current:
            lines.append(join_terms(current, leading=bool(lines)))
            current = []
        parts = _break_product(printer, term, limit - 2) if tex_width(tex) > limit else [tex]
        if len(parts) == 1:
            current = [(sign, tex)]
            continue
        lines.append(join_terms([(sign, parts[0])], leading=bool(lines)))
        lines.extend(parts[1:-1])
        current = [("", parts[-1])]  # the terms after a broken product may follow its last line
    if current:
        lines.append(join_terms(current, leading=bool(lines)))
    return lines


def pack_terms(terms: list[tuple[str, str]], limit: float = LINE_WIDTH) -> list[str]:
    """Signed terms filled into lines no wider than ``limit`` (a term wider than that stands alone)."""
    lines: list[list[tuple[str, str]]] = [[]]
    for sign, tex in terms:
        candidate = lines[-1] + [(sign, tex)]
        if lines[-1] and tex_width(join_terms(candidate, leading=len(lines) > 1)) > limit:
            lines.append([(sign, tex)])
        else:
            lines[-1] = candidate
    return [join_terms(line, leading=position > 0) for position, line in enumerate(lines)]


def _break_product(printer: DerivationLatexPrinter, expr: sp.Expr, limit: float) -> list[str]:
    r"""A single term too wide for a line, broken into lines whose product it is.

    A product with a bracketed sum breaks inside its widest one (head \Bigl( ... \Bigr) tail);
    otherwise between its ordinary factors and the sums and open derivatives that follow them
    (which act on everything after them, so they stay last); a sum breaks inside its summand.
    """
    tex = printer.doprint(expr)
    if tex_width(tex) <= limit:
        return [tex]
    if isinstance(expr, sp.Sum):
        return _break_sum(printer, expr, limit)
    if isinstance(expr, DisplayPartial):
        return _break_partial(printer, expr, limit)
    if isinstance(expr, Mean):
        return _break_mean(printer, expr, limit)
    if not isinstance(expr, sp.Mul):
        return [tex]
    trailing = [f for f in expr.args if isinstance(f, (sp.Sum, DisplayPartial, Mean))]
    plain = [f for f in expr.args if f not in trailing]
    brackets = [f for f in plain if isinstance(f, sp.Add)]
    if brackets:
        lines = _break_bracket(printer, plain, trailing, brackets, limit)
        if len(lines) > 1:
            return lines
    head = sp.Mul(*plain)
    if head not in (1, -1) and trailing:
        sign = "-" if head.could_extract_minus_sign() else ""
        head_tex = sign + _factor(printer, -head if sign else head)
        tail = _break_product(printer, sp.Mul(*trailing), limit - 2)
        if tex_width(head_tex) + tex_width(tail[0]) + 1 <= limit:  # a short head stays on the first line
            return [f"{head_tex} {tail[0]}", *tail[1:]]
        if tex_width(head_tex) > limit and not sign:  # a wide head breaks between its factors too
            return [*_break_factors(printer, list(sp.Mul.make_args(head)), limit), *_continued(tail)]
        return [head_tex, *_continued(tail)]
    if len(trailing) > 1:
        first = _break_product(printer, trailing[0], limit - 2)
        if isinstance(trailing[0], sp.Sum):  # a sum followed by more factors is bracketed
            first = ([rf"\left({first[0]}\right)"] if len(first) == 1 else
                     [rf"\Bigl({first[0]}", *first[1:-1], rf"{first[-1]}\Bigr)"])
        sign = "- " if head == -1 else ""
        return [sign + first[0], *first[1:], *_continued(_break_product(printer, sp.Mul(*trailing[1:]), limit - 2))]
    return _break_factors(printer, plain, limit) if not trailing else [tex]


def _break_factors(printer: DerivationLatexPrinter, factors: list, limit: float) -> list[str]:
    """A plain product too wide for a line (attention's products of exponentials of sums): its wide
    factors (over a third of the line) on lines of their own, after the rest printed as one factor."""
    wide = [f for f in factors if tex_width(_factor(printer, f)) > limit / 3]
    rest = sp.Mul(*[f for f in factors if f not in wide])
    if not wide or len(wide) + (rest not in (1, -1)) < 2:
        return [printer.doprint(sp.Mul(*factors))]
    parts = [_factor(printer, f) for f in wide]
    if rest == -1:
        parts[0] = "-" + parts[0]
    elif rest != 1:
        parts.insert(0, printer.doprint(rest))
    lines = [parts[0]]
    for part in parts[1:]:
        if tex_width(f"{lines[-1]} {part}") <= limit:
            lines[-1] = f"{lines[-1]} {part}"
        else:
            lines.append(part)
    return [lines[0], *(rf"\cdot {line}" for line in lines[1:])]


def _factor(printer: DerivationLatexPrinter, expr: sp.Expr) -> str:
    """``expr`` printed as one factor of a product (bracketed only if it is a sum)."""
    return printer.parenthesize(expr, PRECEDENCE["Mul"], strict=True)


def _continued(lines: list[str]) -> list[str]:
    """Lines that continue a product: the first gets a multiplication sign."""
    return [rf"\cdot {lines[0]}", *lines[1:]]


def _break_sum(printer: DerivationLatexPrinter, expr: sp.Sum, limit: float) -> list[str]:
    r"""\sum_j \Bigl[ summand over several lines \Bigr]."""
    signs = printer.sum_signs(expr)
    inner = _break_any(printer, expr.function, limit - tex_width(signs) - 1)
    if len(inner) == 1:
        return [printer.doprint(expr)]
    return [rf"{signs}\Bigl[{inner[0]}", *inner[1:-1], rf"{inner[-1]}\Bigr]"]


def _break_mean(printer: DerivationLatexPrinter, expr: Mean, limit: float) -> list[str]:
    r"""\langle a summand of several terms, over lines \rangle_{i} (no \left or \right: they may break)."""
    tex = printer.doprint(expr)
    under = tex[tex.rindex(r"\rangle"):]
    inner = _break_any(printer, expr.function, limit - 2)
    if len(inner) == 1:
        return [tex]
    return [rf"\langle {inner[0]}", *inner[1:-1], f"{inner[-1]} {under}"]


def _break_partial(printer: DerivationLatexPrinter, expr: DisplayPartial, limit: float) -> list[str]:
    r"""\frac{\partial}{\partial x_k} \Bigl( what it differentiates, over several lines \Bigr)."""
    inner, wrt = expr.args
    if isinstance(inner, (sp.Indexed, sp.Symbol)):
        return [printer.doprint(expr)]
    opening = rf"\frac{{\partial}}{{\partial {printer.doprint(wrt)}}}"
    lines = _break_any(printer, inner, limit - tex_width(opening) - 1)
    if len(lines) == 1:
        return [printer.doprint(expr)]
    return [rf"{opening}\Bigl({lines[0]}", *lines[1:-1], rf"{lines[-1]}\Bigr)"]


def _break_any(printer: DerivationLatexPrinter, expr: sp.Expr, limit: float) -> list[str]:
    """A sum of terms or a single term, broken into lines no wider than ``limit`` where it can be."""
    return (break_lines if isinstance(expr, sp.Add) else _break_product)(printer, expr, max(limit, 8.0))


def _break_bracket(printer: DerivationLatexPrinter, plain: list, trailing: list, brackets: list,
                   limit: float) -> list[str]:
    r"""head \Bigl( widest bracketed sum over several lines \Bigr) tail, or [] if it fits one line."""
    widest = max(brackets, key=lambda f: tex_width(printer.doprint(f)))
    head = sp.Mul(*[f for f in plain if f is not widest])
    head_tex = "" if head == 1 else "-" if head == -1 else _factor(printer, head) + " "
    own_line = tex_width(head_tex) > limit / 3  # a wide head (a long fraction) stands on its own line
    inner = break_lines(printer, widest, limit - 2 - (0 if own_line else tex_width(head_tex)))
    if len(inner) == 1 and not own_line:
        return []
    bracket = [rf"\Bigl({inner[0]}", *inner[1:-1], rf"{inner[-1]}\Bigr)"] if len(inner) > 1 else [
        rf"\left({inner[0]}\right)"]
    if trailing:
        tail = _break_product(printer, sp.Mul(*trailing), limit - 2)
        if len(tail) == 1 and tex_width(bracket[-1]) + tex_width(tail[0]) + 1 <= limit:
            bracket[-1] += " " + tail[0]
        else:
            bracket += _continued(tail)
    if own_line:
        return [head_tex.strip(), *_continued(bracket)]
    return [head_tex + bracket[0], *bracket[1:]]
