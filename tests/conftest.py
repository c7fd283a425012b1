"""The fixtures and hooks pytest finds by itself: the kernel target each kernel test runs on, a
render cache of the test run's own, the catalogue rendered once, and the grouping of tests for
pytest-xdist.  Helpers the tests import are in ``helpers/``, not here.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("SYMPY_CACHE_SIZE", "100000")
"""SymPy's caches hold 1000 entries per function by default; derivations that rebuild large
expressions evict what they ask again (attention renders in 39.5 s instead of 44 s with 100000).
Set before SymPy is first imported in this process, and inherited by the processes it starts."""

from helpers import ROOT  # noqa: E402 (after the cache size: helpers import derive, which imports SymPy)
from helpers.kernels import KERNEL_TARGETS, NUMBA_BATTERY  # noqa: E402

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
"""A run started in the background (``pytest &``) inherits Ctrl-C ignored, and so would every command
the tests start and then interrupt: they get its default action again (a handler is reset on exec)."""


@pytest.fixture(params=KERNEL_TARGETS)
def kernel_target(request) -> str:
    return request.param


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """The numba kernel tests of operators outside NUMBA_BATTERY deselected (unless DERIVE_NUMBA_ALL),
    and the rest in one pytest-xdist group: one worker compiles each function once, the others
    run the other tests meanwhile.  A numba test of another operator (or none) compiles nothing
    the group does, so it runs wherever xdist places it."""
    kept, left = [], []
    for item in items:
        params = item.callspec.params if hasattr(item, "callspec") else {}
        name = params.get("name") or getattr(params.get("case"), "name", None)
        numba = params.get("kernel_target") == "numba"
        if numba and name is not None and name not in NUMBA_BATTERY and not os.environ.get("DERIVE_NUMBA_ALL"):
            left.append(item)
            continue
        if numba or ("numba" in item.nodeid and name in NUMBA_BATTERY):  # the numba-only tests of the battery
            item.add_marker(pytest.mark.xdist_group("numba"))
        elif "rendered" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("rendered"))  # see ``rendered``: no worker waits for it
        kept.append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept


def shared_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of this test run that every pytest-xdist worker shares (the run's own without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session", autouse=True)
def private_render_cache(tmp_path_factory: pytest.TempPathFactory):
    """Tests (and the commands they start) use a render cache that is new with this test run, never
    the user's; the xdist workers share it (entries are written atomically), so what one worker
    derived another takes from it."""
    previous = os.environ.get("DERIVE_CACHE_DIR")
    folder = shared_folder(tmp_path_factory) / "render-cache"
    folder.mkdir(mode=0o700, exist_ok=True)  # derive uses a cache only where no one else can write
    os.environ["DERIVE_CACHE_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("DERIVE_CACHE_DIR", None)
    else:
        os.environ["DERIVE_CACHE_DIR"] = previous


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261121)


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory, private_render_cache) -> Path:
    """Every built-in operator generated once per test run, through the run's render cache, into a
    folder of its own (do not write into it).  Tests that render the whole registry ask for it first,
    so the cache is warm for them.  They form one pytest-xdist group ("rendered"): one worker renders
    (in a pool of processes) and runs them, while the others run the rest instead of waiting for it."""
    shared = shared_folder(tmp_path_factory)
    out, done = shared / "rendered", shared / "rendered.done"
    with open(shared / "rendered.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            result = subprocess.run([sys.executable, "-m", "derive.cli", "generate", "--out", str(out), "-q"],
                                    cwd=ROOT, capture_output=True, text=True, timeout=900,
                                    env=dict(os.environ, PYTHONHASHSEED=RENDER_HASH_SEED))
            assert result.returncode == 0, result.stdout + result.stderr
            done.touch()
    return out


RENDER_HASH_SEED = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
"""The hash seed ``rendered`` renders the catalog under, in a process of its own (its workers forked
from it), not this environment's: generated/ was written by a `derive generate` under its own
(random) seed, so test_generated_folder_is_current, comparing the two byte for byte, finds any
output that depends on hash order (set iteration, dict order built from sets) or on the time."""
