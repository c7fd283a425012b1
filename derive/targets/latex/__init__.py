"""The LaTeX target: per operator a standalone derivation document, an \\input-able body and a
JSON twin (``generated/latex/``); for the whole registry the notation fragment and the handbook.

``view.py`` (with ``equations``, ``stable``, ``matrix_form``/``matrix_section``, ``text``) builds the
checked document, its expressions printed and broken into lines by ``derive.display``;
``handbook.py`` the whole-registry view; ``target.py`` renders the files and writes their headers.
A twin is read back by ``derive.proof.srepr.load_srepr`` (re-exported here).  This module
registers the target.
"""

from __future__ import annotations

from ...calculus.pipeline import Derivation
from ...model import OperatorModel
from ...proof.srepr import load_srepr
from ..base import Target, regenerate_command
from .headers import latex_environment, latex_header
from .target import FOLDER, TEXT_ERRORS, render_operator, render_registry
from .view import build_document

__all__ = ["TARGET", "load_srepr"]


def _header(derivation: Derivation, template: str) -> str:
    return latex_header(derivation.model.name, derivation.model.source, template,
                        regenerate_command(derivation.model))


def _prove_twin(model: OperatorModel, text: str, seed: int) -> None:
    from ...proof.twin import prove_twin  # NumPy starts threads: imported when a proof runs

    prove_twin(model, text, seed)


TARGET = Target("latex", FOLDER, "latex/derivation.tex.jinja", ".tex", build_document, _header,
                files=render_operator, registry_files=render_registry, suffixes=(".tex", ".json", ".bib"),
                environment=latex_environment, errors=TEXT_ERRORS, proofs={".json": _prove_twin})
