"""The one path from a model to proved files: derive it (each variant once), render every target,
prove each file a target registers a proof for, and keep the result in the render cache.

``render_model`` is what ``derive generate`` (in this process or a pool worker), ``derive.render``
and the fuzzer call; nothing else assembles derive -> render -> prove -> cache.  The proof names no
target: each target registers the checks its files pass (``Target.proofs``), and they run here.
"""

from __future__ import annotations

import warnings

from ..budget import step
from ..calculus.pipeline import Derivation, derive
from ..calculus.rename import without_clashes
from ..errors import LoweringError
from ..model import OperatorModel
from ..targets import TARGETS, Target
from ..targets.latex.target import is_abridged
from ..targets.render import render
from .cache import RenderCache


def prove_files(model: OperatorModel, files: dict[str, str], targets: tuple[Target, ...] = TARGETS,
                seed: int = 0) -> None:
    """Raise ``ProofError`` unless every file of ``model`` that its target proves agrees with the
    oracle (the NumPy, numba and Array API kernels, the LaTeX twin)."""
    for target in targets:
        for suffix, check in target.proofs.items():
            text = files.get(f"{target.folder}/{model.name}{suffix}")
            if text is not None:
                check(model, text, seed)


def render_model(model: OperatorModel | Derivation, targets: tuple[Target, ...] = TARGETS,
                 cache: RenderCache | None = None, strict: bool = False) -> dict[str, str]:
    """Relative path -> text of ``model``'s files for ``targets``, each proved before it is
    returned.  ``cache`` (every target only): served from it when unchanged, stored in it after
    (not an abridged document: a larger budget may write it whole).  ``strict``: a NumPy warning
    while the files are proved (an invalid operation: a NaN made, even one thrown away) fails it."""
    plain = model.model if isinstance(model, Derivation) else model
    if cache is not None and targets != TARGETS:
        raise ValueError("the render cache holds every target's files: render them all to use it")
    cached = cache.load(plain) if cache is not None else None
    if cached is not None:
        return cached
    derivation = model if isinstance(model, Derivation) else derive(model)
    try:
        files = render(derivation, targets)
    except LoweringError as error:
        raise LoweringError(f"operator {plain.name!r} ({plain.source}): {error}") from None
    with warnings.catch_warnings(), step("proving the files against the oracle", plain):
        if strict:
            warnings.simplefilter("error", RuntimeWarning)
        prove_files(without_clashes(plain), files, targets)  # the kernels' names: a clashing one renamed
    if cache is not None and not is_abridged(files, plain.name):
        cache.store(plain, files)
    return files
