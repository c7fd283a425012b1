"""The code's habits, checked on every run: ruff (lint and import order) and mypy (types) pass on
``derive/`` with the configuration in ``pyproject.toml``; generated files and templates are not theirs.

Both run as their own processes, as a developer runs them (``ruff check``, ``mypy``), pinned to the
versions the test extras install so a new release's rules cannot fail a clean clone.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import ROOT


def _run(*command: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(command)} did not finish within 300 s")


def test_ruff_passes() -> None:
    done = _run("ruff", "check", "--no-cache", "derive", "tools")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.xdist_group("mypy")
def test_mypy_passes() -> None:
    done = _run("mypy")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success" in done.stdout
