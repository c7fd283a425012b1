"""How long ``derive generate`` takes, as a user runs it: a fresh process, wall-clock time.

Three runs into a temporary folder with a temporary cache: from scratch (empty cache, operators
derived in parallel), unchanged (the same command again: every operator comes from the cache),
and from scratch serially without the cache, for comparison.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import derive

from ..model import registry

PACKAGE_ROOT = Path(derive.__file__).resolve().parent.parent


def _generate(ops: list[str], out: Path, cache: Path, *extra: str) -> float:
    env = dict(os.environ, DERIVE_CACHE_DIR=str(cache))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "derive.cli", "generate", *ops, "--out", str(out), "-q", *extra]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"`{' '.join(command[1:])}` failed:\n{result.stderr}")
    return elapsed


def time_generation(ops: list[str], unchanged_repeats: int = 3) -> dict:
    """Seconds for ``derive generate [ops]``: from scratch, unchanged (median), serial without cache."""
    with tempfile.TemporaryDirectory(prefix="derive-bench-") as folder:
        root = Path(folder)
        scratch = _generate(ops, root / "out", root / "cache")
        unchanged = [_generate(ops, root / "out", root / "cache") for _ in range(unchanged_repeats)]
        serial = _generate(ops, root / "serial", root / "unused", "--jobs", "1", "--no-cache")
    return {
        "operators": len(ops) if ops else len(registry.names()),
        "scratch_s": scratch,
        "unchanged_s": statistics.median(unchanged),
        "serial_no_cache_s": serial,
        "cpus": os.cpu_count(),
    }
