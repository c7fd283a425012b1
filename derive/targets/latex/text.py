"""Text for LaTeX documents: escaping model prose, naming rules and rewrites, stable label parts."""

from __future__ import annotations

import re

REWRITE_NAMES = {
    "square_of_delta": r"a power of a Kronecker delta is the delta: $\delta_{jk}^2 = \delta_{jk}$",
    "distribute_over_deltas": r"distribute over the terms holding a $\delta$",
    "separate_summand": "separate the summand",
    "split_sum_over_add": "split the sum over its terms (linearity)",
    "pull_factors_out_of_sum": "factor out of the sum what does not depend on its index",
    "collapse_kronecker_sum": r"$\delta$-collapse: $\sum_{j} \delta_{jk}\, g_j = g_k$",
    "pull_numeric_content": "take out the common numeric factor",
    "canonical_dummies": "rename summation indices",
    "delta_out_of_piecewise": r"take a $\delta$ common to every branch out of the piecewise expression",
    "sum_into_piecewise": "move the sum into each branch (no condition depends on its index)",
    "abs_times_sign": r"$|u| \operatorname{sign}(u) = u$",
}
"""How each named rewrite of ``calculus.rules`` reads in a document (keyed by pass name)."""

RULE_PHRASES = {
    "index identity": r"the index identity $\partial x_j / \partial x_k = \delta_{jk}$",
    "constant factor": "the constant-factor rule",
    "constant": "the rule for constants",
    "derivative through the sum": "taking the derivative through the sum",
    "rename summation index, derivative through the sum":
        "renaming the summation index and taking the derivative through the sum",
    "piecewise rule (each branch, conditions held)": "the piecewise rule (each branch, conditions held)",
}
"""How each rule of ``calculus.differentiate`` reads after 'by' (others: 'the <rule>')."""

_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
            "<": r"\textless{}", ">": r"\textgreater{}"}
_UNICODE = {"α": r"$\alpha$", "β": r"$\beta$", "γ": r"$\gamma$", "δ": r"$\delta$", "ε": r"$\epsilon$",
            "ϵ": r"$\epsilon$", "μ": r"$\mu$", "σ": r"$\sigma$", "τ": r"$\tau$", "λ": r"$\lambda$", "π": r"$\pi$",
            "Σ": r"$\Sigma$", "∑": r"$\sum$", "≤": r"$\le$", "≥": r"$\ge$", "≈": r"$\approx$",
            "≫": r"$\gg$", "≪": r"$\ll$", "×": r"$\times$", "·": r"$\cdot$", "−": "-", "–": "--",
            "—": "---", "→": r"$\to$", "√": r"$\surd$", "²": r"$^2$", "³": r"$^3$", "∞": r"$\infty$",
            "…": r"\dots{}", "‘": "`", "’": "'", "“": "``", "”": "''", "∂": r"$\partial$"}


class UntypesettableTextError(ValueError):
    """Model text holding a character the LaTeX target cannot typeset."""


def tex_escape(text: str) -> str:
    """Plain text as LaTeX text: special characters escaped, common math symbols translated, line
    breaks and other control characters as spaces (no blank line ends a paragraph inside a command)."""
    out = []
    for char in text:
        if _is_control(char):
            out.append(" ")
        elif char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char in _UNICODE:
            out.append(_UNICODE[char])
        elif ord(char) > 127:
            raise UntypesettableTextError(
                f"cannot typeset {char!r} (U+{ord(char):04X}) in {text!r}; add it to derive/targets/latex/text.py")
        else:
            out.append(char)
    return "".join(out)


def _is_control(char: str) -> bool:
    return not char.isprintable() and char != " "


def comment_text(text: str) -> str:
    """Text for a ``%`` comment line: on that line, whatever it holds (line breaks become spaces, so
    nothing after them reaches TeX)."""
    return "".join(" " if _is_control(char) else char for char in text)


def prose_text(text: str) -> str:
    """Model prose as LaTeX text; identifiers like negative_slope may break after their '_'."""
    return tex_escape(text).replace(r"\_", r"\_\allowbreak{}")


def code_text(text: str) -> str:
    """Code as LaTeX text for \\texttt, with line breaks allowed after '.', ',', '(' and '/'."""
    return "".join(tex_escape(char) + (r"\allowbreak{}" if char in ".,(/" else "") for char in text)


def label_part(name: str) -> str:
    """A name as a piece of a LaTeX label: letters, digits, '_' and '-' only (operator and input
    names are identifiers, so they stay as they are)."""
    return re.sub(r"[^A-Za-z0-9_]+", "-", name).strip("-") or "x"


def label_text(label: str) -> str:
    """A label as typewriter text that may break after each ':', '-' and '_' (to fit a column)."""
    escaped = "".join(tex_escape(char) + (r"\allowbreak{}" if char in ":-_" else "") for char in label)
    return rf"\texttt{{{escaped}}}"


def rewrite_text(pass_name: str) -> str:
    """How a named rewrite reads in a document (its name in words when the table lacks it)."""
    return REWRITE_NAMES.get(pass_name) or tex_escape(pass_name.replace("_", " "))


def rule_text(rules: tuple[str, ...]) -> str:
    """'by the sum rule and the power rule' for the rules one derivation step used."""
    if not rules:
        return ""
    names = [RULE_PHRASES.get(rule, f"the {tex_escape(rule)}") for rule in rules]
    if len(names) == 1:
        return f"by {names[0]}"
    return f"by {', '.join(names[:-1])} and {names[-1]}"
