"""Derive and render operators into an output folder, or check that the folder is current.

This is the layer the CLI calls: it reports progress through a callback, writes atomically
through ``emit.render.write_tree``, and never leaves a half-written folder behind.  Operators
are given as models (built-in, installed or from a user's file); none means every built-in one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from . import registry
from .calculus.pipeline import derive
from .emit.numpy_printer import LoweringError
from .emit.render import differences, render, render_registry, stale_files, write_tree
from .model import OperatorModel

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Outcome:
    files: dict[str, str]
    stale: list[str]


def render_models(models: Sequence[OperatorModel], progress: Progress = lambda message: None,
                  whole_registry: bool = False) -> dict[str, str]:
    """Relative path -> text for the given operator models.

    ``whole_registry``: the models are the whole registry, so also render the documents that cover
    every operator (the LaTeX handbook).
    """
    files: dict[str, str] = {}
    derivations = []
    for position, model in enumerate(models, start=1):
        started = time.perf_counter()
        try:
            derivation = derive(model)
            files.update(render(derivation))
        except LoweringError as error:
            raise LoweringError(f"operator {model.name!r} ({model.source}): {error}") from None
        derivations.append(derivation)
        progress(f"[{position}/{len(models)}] {model.name} ({time.perf_counter() - started:.2f} s)")
    if whole_registry:
        started = time.perf_counter()
        files.update(render_registry(derivations))
        progress(f"whole registry ({time.perf_counter() - started:.2f} s)")
    return files


def render_operators(names: Iterable[str], progress: Progress = lambda message: None,
                     whole_registry: bool = False) -> dict[str, str]:
    """Relative path -> text for the named operators (every name is checked before any work)."""
    return render_models([registry.get(name) for name in names], progress, whole_registry)


def plan(out: Path, models: Sequence[OperatorModel] | None, progress: Progress) -> Outcome:
    """Render ``models`` (every built-in when None); stale files only for that full run."""
    if models is None:
        files = render_operators(registry.names(), progress, whole_registry=True)
        return Outcome(files, stale_files(out, files))
    return Outcome(render_models(models, progress), [])


def _models(names: Sequence[str] | None, models: Sequence[OperatorModel] | None) -> Sequence[OperatorModel] | None:
    if models is not None:
        return models
    return [registry.get(name) for name in names] if names else None


def generate(out: Path, names: Sequence[str] | None = None, progress: Progress = lambda m: None, *,
             models: Sequence[OperatorModel] | None = None) -> list[str]:
    """Write the operators' files into ``out``; returns the paths that changed."""
    outcome = plan(out, _models(names, models), progress)
    return write_tree(out, outcome.files, outcome.stale)


def check(out: Path, names: Sequence[str] | None = None, progress: Progress = lambda m: None, *,
          models: Sequence[OperatorModel] | None = None) -> list[str]:
    """Unified diffs of what ``generate`` would change in ``out`` (empty when current)."""
    outcome = plan(out, _models(names, models), progress)
    return differences(out, outcome.files, outcome.stale)
