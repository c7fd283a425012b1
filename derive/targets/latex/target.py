"""The LaTeX target: per operator a standalone document, an \\input-able body and a JSON twin;
for the whole registry the notation fragment and the handbook.

Templates use ``<< >>`` for values and ``<% %>`` for blocks, so LaTeX braces never clash with
Jinja, and receive frozen views of already-printed strings.  The "generated, do not edit" header
is written here, with no timestamp or machine path.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import PurePosixPath

import jinja2
import sympy as sp

from ...budget import KINDS, SETTINGS, OverBudget, report, step
from ...calculus.pipeline import COTANGENT, Derivation
from ...model import OperatorModel
from ...version import __version__
from .handbook import build_handbook
from .headers import BIBLIOGRAPHY, bibliography, latex_header
from .text import UntypesettableTextError, code_text, tex_escape
from .view import DocumentView, UnknownCitationError, build_document

FOLDER = "latex"
REGISTRY_FILES = ("handbook", "notation", "derive")
"""Names of the whole-registry documents; no operator may take them."""


class ReservedNameError(ValueError):
    """An operator whose name collides with a whole-registry LaTeX file."""


TEXT_ERRORS = (ReservedNameError, UntypesettableTextError, UnknownCitationError)
"""Errors of this target that mean "this operator cannot be rendered" (reported as RenderError)."""


BODY_NEEDS = (r"Needs \usepackage{amsmath,amssymb,mathtools} and nothing else (hyperref, if loaded, makes "
              r"the \eqref links); \input{notation} once explains the notation.")
"""The header line of a body that names the packages it needs (a test compiles it with exactly these)."""
BODY_CITES = f"% Cites keys of {BIBLIOGRAPHY}.bib (generated beside it): add it to the paper's bibliography.\n"


def render_operator(derivation: Derivation, env: jinja2.Environment) -> dict[str, str]:
    """``<op>.tex`` (standalone), ``<op>-body.tex`` (to \\input) and ``<op>.json`` (the twin)."""
    model = derivation.model
    if model.name in REGISTRY_FILES:
        raise ReservedNameError(f"operator name {model.name!r} is reserved for generated/latex/{model.name}.tex")
    try:
        view = build_document(derivation)
    except OverBudget as over:
        if over.kind == "total":
            raise  # no time left for anything
        report(f"{model.name}: {over.step} went over {over.limit}; its LaTeX document is abridged "
               "(the kernels are whole)")
        with step("the abridged document"):
            view = build_document(derivation, abridged=abridged_text(over))
    equations = [equation.twin() for equation in view.equations]
    view = replace(view, identity=identity_text(derivation, equations))
    body = env.get_template("latex/body.tex.jinja").render(d=view)
    result = env.get_template("latex/result-fragment.tex.jinja").render(d=view, start=0)
    notation = env.get_template("latex/notation.tex.jinja").render()
    command = f"derive generate {model.name}"
    standalone = env.get_template("latex/derivation.tex.jinja").render(
        header=latex_header(f"{model.name}: standalone derivation document.", model.source,
                            "latex/derivation.tex.jinja", command,
                            f"Compile with BibTeX (latexmk does) beside {BIBLIOGRAPHY}.bib."),
        name=view.name, version=__version__, notation=notation, body=body, source=code_text(model.source),
        bibliography=BIBLIOGRAPHY)
    fragment = latex_header(
        f"{model.name}: derivation body, to \\input into a document (labels eq:{view.label[4:]}:...).",
        model.source, "latex/body.tex.jinja", command,
        BODY_NEEDS) + BODY_CITES + body
    result_fragment = latex_header(
        f"{model.name}: the results alone, to \\input into a paper (the body holds them too: \\input one of the two).",
        model.source, "latex/result-fragment.tex.jinja", command, BODY_NEEDS) + BODY_CITES + result
    return {f"{model.name}.tex": standalone, f"{model.name}-body.tex": fragment,
            f"{model.name}-result.tex": result_fragment, f"{model.name}.json": twin(view, derivation, equations)}


def abridged_text(over: OverBudget) -> str:
    """Why a document is abridged, as LaTeX text."""
    option, variable = SETTINGS[KINDS[over.kind]]
    section = over.step.split(": ", 1)[-1]  # the step within "rendering the latex target"
    return (f"The derivation step by step is left out of this document: {tex_escape(section)} went over "
            f"{tex_escape(over.limit).replace(' s ', '~s ')} (\\texttt{{-{{}}-{{}}{code_text(option[2:])}}} or "
            f"\\texttt{{{code_text(variable)}}}). The result below is the VJP and JVP the kernels compute, checked "
            f"against the contraction of the derivative; the kernels and this document are proved against the "
            f"oracle as always. Generate again with a larger budget for the whole derivation.")


def is_abridged(files: Mapping[str, str], name: str) -> bool:
    """Are ``files`` (one operator's rendered files) holding an abridged document?"""
    twin = files.get(f"{FOLDER}/{name}.json")
    return twin is not None and "abridged" in json.loads(twin)


def digest(value: object) -> str:
    """The first 16 hex digits of the SHA-256 of ``value`` as sorted JSON."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def model_digest(model: OperatorModel) -> str:
    """A digest of what the model defines: inputs, parameters, layout, output and named quantities."""
    return digest({"name": model.name, "output": sp.srepr(model.output),
                   "indices": [sp.srepr(i) for i in model.output_indices],
                   "where": [[name, sp.srepr(expr)] for name, expr in model.where],
                   "inputs": [[i.name, [str(d) for d in i.dims], i.optional, repr(i.default), i.differentiable]
                              for i in model.inputs],
                   "params": [[p.name, repr(p.default), str(p.symbol)] for p in model.params],
                   "layout": repr(model.layout)})


def identity_text(derivation: Derivation, equations: list[dict]) -> str:
    """The sentence that identifies a document: the derive and SymPy versions, the model's digest and
    the digest of every equation the engine derived from it (the twin's labels and exact sides)."""
    return (f"derive {__version__}, SymPy {sp.__version__}; model \\texttt{{{model_digest(derivation.model)}}}, "
            f"derivation \\texttt{{{digest(equations)}}}.")


def twin(view: DocumentView, derivation: Derivation, equations: list[dict]) -> str:
    """Every numbered equation of the document: label, LaTeX and the srepr of both exact sides."""
    model = derivation.model
    document = {
        "operator": model.name,
        "generator": f"derive {__version__}",
        "sympy": sp.__version__,
        "source": model.source,
        "indices": "0-based in srepr (Idx over 0..n-1); printed 1-based in the LaTeX",
        "cotangent": COTANGENT,
        "tangents": {g.input.name: f"dot_{g.input.name}" for g in derivation.gradients},
        "model_digest": model_digest(model),
        "derivation_digest": digest(equations),
        "equations": equations,
    }
    if view.abridged:
        document["abridged"] = "the derivation steps are left out: they went over the budget"
    return json.dumps(document, indent=1, ensure_ascii=True) + "\n"


def render_registry(derivations: list[Derivation], env: jinja2.Environment) -> dict[str, str]:
    """``notation.tex`` and ``handbook.tex`` (every operator's body, \\input from this folder)."""
    notation = env.get_template("latex/notation.tex.jinja").render()
    handbook = build_handbook(derivations)
    sources = sorted({str(PurePosixPath(d.model.source).parent) + "/" for d in derivations if d.model.source})
    return {
        f"{BIBLIOGRAPHY}.bib": bibliography(env),
        "notation.tex": latex_header("Notation used by every derivation document.", "derive/display/latex.py",
                                     "latex/notation.tex.jinja", "derive generate") + notation,
        "handbook.tex": env.get_template("latex/handbook.tex.jinja").render(
            header=latex_header("The handbook: every operator's derivation, and the seed questions.",
                                "the operator registry", "latex/handbook.tex.jinja", "derive generate",
                                "Compile in this folder: it \\inputs notation.tex and <op>-body.tex."),
            h=handbook, version=__version__, sources=", ".join(rf"\texttt{{{code_text(s)}}}" for s in sources),
            bibliography=BIBLIOGRAPHY),
    }
