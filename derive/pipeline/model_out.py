"""``--model-out FILE``: a traced model written as a model file, checked, and moved in place last.

``staged(model, path, out, command)`` checks the path (a ``.py`` file outside the output folder, not a
link, and either new or a file derive wrote before), writes the text to a private folder and loads it
back through the model-file loader, which must rebuild the same model; the file itself is written
(atomically, by rename) only when the block it guards ends without an error.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import sympy as sp

from ..errors import ModelError, OutputError
from ..model import OperatorModel
from ..model.files import load_model
from ..model.source import model_source

MARK = "Written by derive ("
"""What the docstring of a model file derive wrote says, in its first lines."""


def check_path(path: Path, out: Path) -> None:
    """Raise ``OutputError`` unless derive may write its model file at ``path``."""
    if path.suffix != ".py":
        raise OutputError(f"--model-out {path}: a model file is a Python file (.py)")
    if not path.parent.is_dir():
        raise OutputError(f"--model-out {path}: the folder {path.parent} does not exist")
    if path.resolve().is_relative_to(out.resolve()):
        raise OutputError(f"--model-out {path}: inside the output folder {out}, which derive manages; "
                          "write the model file beside your code")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise OutputError(f"--model-out {path}: not a regular file; derive writes only files of its own")
    if path.exists():
        with path.open("rb") as existing:
            head = existing.read(2000).decode("utf-8", "replace")
        if MARK not in head:
            raise OutputError(f"--model-out {path}: the file exists and derive did not write it; "
                              "remove it or choose another name")


@contextlib.contextmanager
def staged(model: OperatorModel, path: Path, out: Path, command: str) -> Iterator[None]:
    """Check ``path`` and the file's text now; write it when the block succeeds."""
    check_path(path, out)
    text = model_source(model, command)
    _rebuilds(model, text)
    yield
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _rebuilds(model: OperatorModel, text: str) -> None:
    """The text, loaded as a model file, builds ``model`` again (else a ``ModelError``)."""
    with tempfile.TemporaryDirectory(prefix="derive-model-out-") as folder:
        file = Path(folder) / f"{model.name}.py"
        file.write_text(text, encoding="utf-8")
        loaded = load_model(file)
    same = (sp.srepr(loaded.output) == sp.srepr(model.output) and loaded.where == model.where
            and loaded.inputs == model.inputs and loaded.params == model.params
            and loaded.output_indices == model.output_indices and loaded.shift_invariant == model.shift_invariant)
    if not same:
        raise ModelError(f"the model file written for {model.name!r} does not build the traced model again; "
                         "please report this")
