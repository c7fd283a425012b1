"""What the tests share, in one place: every helper a test imports lives in this package, written
once (``conftest.py`` holds only the fixtures and hooks pytest finds by itself).

Here: where things are (``ROOT``, ``GENERATED``, ``LATEX``, ``MODELS``) and the catalogue's
``OPERATORS``.  Beside it:

- ``kernels``: the generated kernels, and inputs for any operator made from its model alone;
- ``reference``: plain NumPy forwards with PyTorch's semantics;
- ``finite_differences``: float64 central differences, for every derivative check;
- ``torch_cases``: PyTorch's call for each operator and the cases the kernels meet it on;
- ``adapter_cases``: small cases for the torch and JAX adapters' gradient checks;
- ``formulas``: a document's twin, and the numbers to evaluate a formula and its kernel at;
- ``commands``: running ``derive`` and reading what it did (one error line, the files, stderr);
- ``readme``: the README's code blocks.

The tests import them as ``helpers.<module>`` (pyproject.toml puts tests/ on the path).
"""

from __future__ import annotations

from pathlib import Path

from derive.model import registry

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "generated"
LATEX = GENERATED / "latex"
MODELS = ROOT / "tests" / "models"
"""Model files written as a user writes them (the functions a model may use), used by several layers' tests."""
OPERATORS = registry.names()
