"""Render derivations through the Jinja templates of each target (``derive.pipeline.output`` writes the files).

The one rendering loop every target goes through: a target's view and template (or its own
``files``) give the text of each file, and a failure is reported as a ``RenderError`` naming the
template (and line) or the target and the operator.  Targets are registered in ``derive.targets``.
"""

from __future__ import annotations

import traceback

import jinja2

from ..budget import step
from ..calculus.pipeline import Derivation
from ..errors import DerivationError, LoweringError, RenderError
from . import TARGETS
from .base import Target, environment, template_folder

__all__ = ["TARGETS", "Target", "environment", "managed_folders", "render", "render_registry", "template_folder"]


def render(derivation: Derivation, targets: tuple[Target, ...] = TARGETS) -> dict[str, str]:
    """Relative path -> file text for every target of one derivation."""
    files = {}
    for target in targets:
        with step(f"rendering the {target.name} target", derivation.model):
            rendered = _render_target(derivation, target)
        files.update({f"{target.folder}/{name}": text for name, text in rendered.items()})
    return files


def _render_target(derivation: Derivation, target: Target) -> dict[str, str]:
    env = environment(target)
    try:
        if target.files is not None:
            return target.files(derivation, env)
        view = target.build(derivation)
        return {f"{derivation.model.name}{target.suffix}": env.get_template(target.template).render(
            k=view, header=target.header(derivation, target.template))}
    except (LoweringError, DerivationError):
        raise  # the model has no such form (or went over its budget): reported as it is, not as a template failure
    except target.errors as error:
        raise RenderError(f"target {target.name} failed for operator {derivation.model.name!r}: {error}") from error
    except Exception as error:  # a template can fail in any way (syntax, undefined name, a filter)
        raise RenderError(f"template {_template_line(target.template, error)} failed for operator "
                          f"{derivation.model.name!r}: {type(error).__name__}: {error}") from None


def render_registry(derivations: list[Derivation], targets: tuple[Target, ...] = TARGETS) -> dict[str, str]:
    """Relative path -> file text for the documents that cover every operator (the handbook)."""
    files = {}
    for target in targets:
        if target.registry_files is None:
            continue
        expected: tuple[type[Exception], ...] = (jinja2.TemplateError, *target.errors)
        try:
            rendered = target.registry_files(derivations, environment(target))
        except expected as error:
            raise RenderError(f"target {target.name} failed for the whole registry: {error}") from error
        files.update({f"{target.folder}/{name}": text for name, text in rendered.items()})
    return files


def _template_line(template: str, error: Exception) -> str:
    """``templates/<file>, line N`` where Jinja places the failure (the target's template if unknown)."""
    line = getattr(error, "lineno", None)
    if line:  # a syntax error knows its place
        return f"templates/{getattr(error, 'name', None) or template}, line {line}"
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename.endswith(".jinja")]
    if not frames:
        return f"templates/{template}"
    path = frames[-1].filename.replace("\\", "/")
    name = path.split("/templates/")[-1] if "/templates/" in path else path
    return f"templates/{name}, line {frames[-1].lineno}"


def managed_folders(targets: tuple[Target, ...] = TARGETS) -> tuple[str, ...]:
    return tuple(t.folder for t in targets)
