"""Derive and render operators into an output folder, or check that the folder is current.

This is the layer the CLI calls: it reports progress through a callback, writes atomically
through ``emit.render.write_tree``, and never leaves a half-written folder behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from . import registry
from .calculus.pipeline import derive
from .emit.render import differences, render, render_registry, stale_files, write_tree

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Outcome:
    files: dict[str, str]
    stale: list[str]


def render_operators(names: Iterable[str], progress: Progress = lambda message: None,
                     whole_registry: bool = False) -> dict[str, str]:
    """Relative path -> text for the named operators (every name is checked before any work).

    ``whole_registry``: the names are the whole registry, so also render the documents that cover
    every operator (the LaTeX handbook).
    """
    names = list(names)
    models = [registry.get(name) for name in names]
    files: dict[str, str] = {}
    derivations = []
    for position, model in enumerate(models, start=1):
        started = time.perf_counter()
        derivation = derive(model)
        files.update(render(derivation))
        derivations.append(derivation)
        progress(f"[{position}/{len(models)}] {model.name} ({time.perf_counter() - started:.2f} s)")
    if whole_registry:
        started = time.perf_counter()
        files.update(render_registry(derivations))
        progress(f"whole registry ({time.perf_counter() - started:.2f} s)")
    return files


def plan(out: Path, names: list[str] | None, progress: Progress) -> Outcome:
    """Render the named operators (all when ``names`` is empty); stale files and the documents
    covering every operator only for a full run."""
    full = not names
    files = render_operators(names or registry.names(), progress, whole_registry=full)
    return Outcome(files, stale_files(out, files) if full else [])


def generate(out: Path, names: list[str] | None = None, progress: Progress = lambda m: None) -> list[str]:
    """Write the operators' files into ``out``; returns the paths that changed."""
    outcome = plan(out, names, progress)
    return write_tree(out, outcome.files, outcome.stale)


def check(out: Path, names: list[str] | None = None, progress: Progress = lambda m: None) -> list[str]:
    """Unified diffs of what ``generate`` would change in ``out`` (empty when current)."""
    outcome = plan(out, names, progress)
    return differences(out, outcome.files, outcome.stale)
