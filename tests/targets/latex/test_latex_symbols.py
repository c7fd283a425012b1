"""One letter, one meaning, one range within a document: no index letter runs over two axes, and no
index is shown as a letter that names something else (an input, a named quantity, a size, Euler's e)."""

from __future__ import annotations

import re

import pytest
import sympy as sp
from helpers import LATEX, OPERATORS

from derive.display.catalogue import LETTERS, meaning
from derive.display.latex import DerivationLatexPrinter, IndexLetters
from derive.model import registry
from derive.targets.latex.equations import Equations

RANGE = re.compile(r"\$([^$]*?) \\in \\\{1, \\dots, ([^$]*?)\\\}\$")


def ranges(text: str) -> list[tuple[list[str], str]]:
    """(letters, axis) of every '$i, j \\in \\{1, \\dots, n\\}$' a document states."""
    return [([letter.strip() for letter in letters.split(",")], axis) for letters, axis in RANGE.findall(text)]


@pytest.mark.parametrize("name", OPERATORS)
def test_no_index_letter_runs_over_two_ranges_in_a_document(name):
    for kind in ("body", "result"):
        stated = ranges((LATEX / f"{name}-{kind}.tex").read_text())
        assert stated, f"{name}-{kind}.tex states no index range"
        axes: dict[str, set[str]] = {}
        for letters, axis in stated:
            for letter in letters:
                axes.setdefault(letter, set()).add(axis)
        assert {letter: axis for letter, axis in axes.items() if len(axis) > 1} == {}, f"{name}-{kind}"
        assert "e" not in axes, f"{name}-{kind}: the index e would read as Euler's number"


def test_an_index_name_over_a_second_axis_is_shown_as_another_letter_never_a_reserved_one():
    n, m = sp.Symbol("n", integer=True, positive=True), sp.Symbol("m", integer=True, positive=True)
    printer = DerivationLatexPrinter(letters=IndexLetters({"x", "k", "e"}))
    j_n, j_m, i_m, e_n = sp.Idx("j", n), sp.Idx("j", m), sp.Idx("i", m), sp.Idx("e", n)
    x = sp.IndexedBase("x")
    assert printer.doprint(x[j_n]) == "x_{j}"
    shown = printer.doprint(x[j_m, i_m])  # two letters, neither j (over n) nor a reserved one
    other = re.fullmatch(r"x_\{(\w)(\w)\}", shown).groups()
    assert other[0] != other[1] and not set(other) & {"j", "k", "x", "e"}
    assert printer.doprint(x[e_n])[3:-1] not in {"e", "j", "k", "x", *other}
    assert printer.doprint(x[j_n]) == "x_{j}"  # the same index, the same letter


SPACE = re.compile(r"\$([^$]*?) \\in \\mathbb\{R\}\^\{([^}]*)\}\$")
WHERE = re.compile(r"^\\?([A-Za-z]+)(?:_\{[^}]*\})? &=.*\\label\{eq:[^:]+:where-([^}-]*)[^}]*\}", re.M)


def shown_meanings(name: str) -> dict[str, set[str]]:
    """Letter -> meanings, from what one document shows: the sizes of each input's space (matched to
    the model's sizes by position) and the named quantities it defines; a meaning from the table."""
    model, out = registry.get(name), {}
    text = (LATEX / f"{name}-body.tex").read_text()
    spaces = dict(SPACE.findall(text))
    printer = Equations(model).printer
    for inp in model.inputs:
        shown = spaces.get(printer.base_name(inp.name))
        if inp.dims and shown is not None:
            for size, letter in zip(inp.dims, shown.split(r" \times ")):
                out.setdefault(letter, set()).add(meaning(name, str(size)) or f"{name}'s {size}")
    defined = {n for n, _ in model.where}
    for letter, quantity in WHERE.findall(text):
        if quantity in defined:
            out.setdefault(letter, set()).add(meaning(name, quantity) or f"{name}'s {quantity}")
    return out


def test_one_letter_one_meaning_across_the_catalogue():
    """The notation table: a size or named quantity shows as one letter in every document, and no
    letter means two things (S the softmax's normaliser, a spatial size and a key count was three)."""
    meanings: dict[str, set[str]] = {}
    for name in OPERATORS:
        for letter, said in shown_meanings(name).items():
            meanings.setdefault(letter, set()).update(said)
    assert {"n", "N", "S", "mu", "sigma", "Z"} <= set(meanings)  # sizes and quantities were read
    assert {letter: said for letter, said in meanings.items() if len(said) > 1} == {}
    assert all(LETTERS.get(next(iter(said))) == letter for letter, said in meanings.items()), meanings
