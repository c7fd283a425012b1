"""What a target is, and what every target shares: the template folder, the Jinja environment,
and the text of the "generated, do not edit" header (written by Python code, not by templates).

A target (as SymForce pairs a printer with its templates) is a view builder + a template + an
output folder; it may render several files per operator and files covering the whole registry.
Headers hold no timestamp or machine path, so rendering twice gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from ..calculus.pipeline import Derivation, tangent_name
from ..model import OperatorModel

Prover = Callable[[OperatorModel, str, int], None]
"""Raise ``ProofError`` unless a rendered file's text computes what the model says (seeded)."""


@dataclass(frozen=True)
class Target:
    """``build`` + ``template`` give one ``<op><suffix>`` per operator, unless ``files`` renders a
    whole set of files for an operator; ``registry_files`` renders files that cover every operator."""

    name: str
    folder: str
    template: str
    suffix: str
    build: Callable[[Derivation], object]
    header: Callable[[Derivation, str], str]
    files: Callable[[Derivation, jinja2.Environment], dict[str, str]] | None = None
    registry_files: Callable[[list[Derivation], jinja2.Environment], dict[str, str]] | None = None
    suffixes: tuple[str, ...] = ()
    """Every kind of file the target writes (for stale detection); default ``(suffix,)``."""
    environment: Callable[[jinja2.BaseLoader], jinja2.Environment] | None = None
    errors: tuple[type[Exception], ...] = ()
    """Errors of this target that mean "this operator cannot be rendered" (reported as RenderError)."""
    proofs: dict[str, Prover] = field(default_factory=dict)
    """File suffix -> the check ``derive.proof.kernel`` runs on ``<op><suffix>`` before it is written."""


def docstring_text(text: str) -> str:
    """``text`` to paste between triple double quotes: the string Python reads back is ``text``
    (backslashes and quotes escaped, characters that cannot stand in source as escapes)."""
    out = []
    for char in text:
        if char in '\\"':
            out.append("\\" + char)
        elif char != "\n" and (not char.isprintable() or 0xD800 <= ord(char) <= 0xDFFF):
            out.append(char.encode("unicode_escape", "backslashreplace").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


def regenerate_command(model: OperatorModel) -> str:
    """The command that writes this operator's files again (a user's model file needs --model)."""
    if model.source.startswith("derive/ops/"):
        return f"derive generate {model.name}"
    if model.source.endswith(".py"):
        return f"derive generate --model {model.source} --out DIR"
    if ".py:" in model.source:  # traced from a function (derive.model.trace)
        shapes = "".join(f" --shape {i.name}={','.join(map(str, i.dims)) or '()'}" for i in model.inputs)
        return f"derive generate --from {model.source}{shapes} --out DIR"
    return f"derive generate {model.name} --out DIR"  # an installed package's operator


def template_folder() -> Path:
    """The templates: the source checkout's ``templates/``, else the installed package's copy.

    A checkout is recognised by its ``pyproject.toml`` beside ``templates/`` (an installed package
    sits in site-packages, where a stray ``templates`` folder of another package may lie).
    """
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "templates").is_dir() and (checkout / "pyproject.toml").is_file():
        return checkout / "templates"
    return Path(__file__).resolve().parents[1] / "templates"  # package-dir "derive.templates"


def environment(target: Target | None = None) -> jinja2.Environment:
    """The Jinja environment of ``target`` (its own, if it declares one) over the template folder."""
    loader = jinja2.FileSystemLoader(str(template_folder()))
    if target is not None and target.environment is not None:
        return target.environment(loader)
    env = jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["repr"] = repr
    env.filters["docstring"] = docstring_text
    env.filters["tangent"] = tangent_name
    return env
