"""Compiling generated LaTeX in tests: TeX required (or skipped with DERIVE_SKIP_TEX=1), and the
packages a fragment's header says it needs."""

from __future__ import annotations

import os
import re
import shutil

import pytest

NEEDS = re.compile(r"^% Needs (\\usepackage\{[^}]*\}(?:\s*\\usepackage(?:\[[^]]*\])?\{[^}]*\})*)", re.M)


def needed_packages(fragment: str) -> str:
    """The \\usepackage lines a fragment's header names (an AssertionError if it names none)."""
    found = NEEDS.search(fragment.split("\n\\", 1)[0])
    assert found, "the header does not name the packages the fragment needs"
    return found.group(1)


def tex_or_skip() -> None:
    if os.environ.get("DERIVE_SKIP_TEX") == "1":
        pytest.skip("DERIVE_SKIP_TEX=1")
    if shutil.which("pdflatex") is None:
        pytest.fail("pdflatex is not installed (set DERIVE_SKIP_TEX=1 to skip locally)")
