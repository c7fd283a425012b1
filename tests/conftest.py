"""Shared test helpers: load generated kernels, build concrete inputs for any operator model.

Inputs are made from the model alone (its layout, its axes, each input's domain), so a new
operator is tested by the whole battery without new test code.
"""

from __future__ import annotations

import fcntl
import functools
import importlib.util
import itertools
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

os.environ.setdefault("SYMPY_CACHE_SIZE", "100000")
"""SymPy's caches hold 1000 entries per function by default; derivations that rebuild large
expressions evict what they ask again (attention renders in 39.5 s instead of 44 s with 100000).
Set before SymPy is first imported in this process, and inherited by the processes it starts."""

from derive.model import registry  # noqa: E402 (after the cache size)

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
"""A run started in the background (``pytest &``) inherits Ctrl-C ignored, and so would every command
the tests start and then interrupt: they get its default action again (a handler is reset on exec)."""

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "generated"
OPERATORS = registry.names()


KERNEL_TARGETS: tuple[str, ...] = ("numpy", "array_api", "numba")
"""The targets whose generated kernels keep the kernel contract (INPUTS, forward, vjp, jvp, the same
checks): the kernel tests run over each through the ``kernel_target`` fixture."""


@pytest.fixture(params=KERNEL_TARGETS)
def kernel_target(request) -> str:
    return request.param


NUMBA_BATTERY = ("mul", "sigmoid", "gelu", "reduce_mean", "softmax", "layernorm", "cross_entropy", "matmul",
                 "mse_loss", "batchnorm", "group_norm")
"""The operators the kernel tests run compiled on the numba target (each layout, two inputs with
broadcasting, a runtime helper, a formula-selecting parameter, the shift and exp, optional inputs,
integer inputs, a contraction): numba compiles every function on its first call (1-2 s each, and a
CI run's cache is cold), so the other operators' numba tests are deselected, not run, unless
DERIVE_NUMBA_ALL=1.  Every numba kernel is still proved against the oracle before it is written
(its loops interpreted), and test_cli checks that generated/ is what the proved generator writes."""


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


def load_kernel(name: str, target: str = "numpy", folder: Path | None = None) -> ModuleType:
    """The generated ``target`` kernel of operator ``name`` (from ``folder`` if given).  A kernel of
    generated/ is loaded once per test process: a numba kernel loaded again would look up (or
    compile) each of its compiled functions again on its first call."""
    return _load_kernel(name, GENERATED / target) if folder is None else _load_kernel.__wrapped__(name, folder)


@functools.cache
def _load_kernel(name: str, folder: Path) -> ModuleType:
    path = folder / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"kernel_{name}_{abs(hash(folder))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def model_of(name: str):
    """The built-in operator ``name``'s model, built once per test process (the helpers below ask
    for it thousands of times, at collection and in every kernel test; a model is immutable)."""
    return registry.get(name)


SIZE_CASES = (1, 3, 4)
BATCH_CASES = ((), (2,), (2, 3))


def shape_cases(name: str) -> list[tuple[dict, tuple]]:
    """(size of every core axis, batch shape): n = 1, odd, even; 0, 1 and 2 batch dims.

    Axes get distinct sizes (1, 2, 3, ... above the base) so that a mixed-up axis shows.
    """
    dims = model_of(name).dims()
    return [({str(d): size + position for position, d in enumerate(dims)}, batch)
            for size, batch in itertools.product(SIZE_CASES, BATCH_CASES)]


def param_cases(name: str) -> list[dict]:
    """Keyword parameters to call with: the defaults, and each value of a formula-selecting one."""
    model = model_of(name)
    cases = [{}]
    for param in model.params:
        cases += [{param.name: value} for value in param.choices if value != param.default]
    return cases


def required_params(name: str, sizes: dict) -> dict:
    model = model_of(name)
    return {"num_groups": sizes["G"]} if any(p.name == "num_groups" for p in model.params) else {}


def random_values(shape: tuple, domain: str, rng: np.random.Generator, dtype=np.float64, upper: int = 0) -> np.ndarray:
    """Random entries for an input of ``domain``: labels below ``upper``, positive, nonzero or any real."""
    if domain == "index":
        return rng.integers(0, max(upper, 1), size=shape)  # (labels of 0 classes: out of range)
    values = rng.standard_normal(shape)
    if domain == "positive":
        values = np.abs(values) + 0.5
    elif domain == "nonzero":
        values = np.sign(values) * (np.abs(values) + 0.5)
    return values.astype(dtype)


def user_shape(model, inp, sizes: dict, batch: tuple, position: int) -> tuple:
    """The shape a caller passes for ``inp``, as the model's layout expects it."""
    core = tuple(sizes[str(d)] for d in inp.dims)
    kind = model.layout.kind
    if kind in ("channels", "groups"):
        channels = core[0] * core[1] if kind == "groups" and position else None
        if position == 0:
            n, c = core[0], core[1] * core[2] if kind == "groups" else core[1]
            return (n, c) + batch
        return (channels,) if kind == "groups" else core
    if kind == "elementwise" and position % 2:
        return core  # every other input broadcasts against the batch
    return core if inp.optional else batch + core


def make_inputs(name: str, sizes: dict, batch: tuple, rng: np.random.Generator,
                dtype=np.float64) -> tuple[list[np.ndarray], dict]:
    """Random inputs for one shape case, and the keyword parameters the layout requires."""
    model = model_of(name)
    arrays = []
    for position, inp in enumerate(model.inputs):
        shape = user_shape(model, inp, sizes, batch, position)
        upper = sizes[str(inp.index_of)] if inp.index_of is not None else 0
        arrays.append(random_values(shape, inp.domain, rng, dtype, upper))
    return arrays, required_params(name, sizes)


def float_positions(name: str) -> list[int]:
    return [p for p, inp in enumerate(model_of(name).inputs) if inp.domain != "index"]


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


class Watched:
    """A started process whose stderr a thread reads line by line, so that waiting for a line or for
    the end has a deadline: a process that hangs fails its test, never the whole run."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process, self.lines, self._queue = process, [], queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float) -> None:
        """Return once a line of stderr holds ``text``; fail the test after ``timeout`` seconds or at
        the end of the output."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line with {text!r} within {timeout} s; stderr so far:\n{''.join(self.lines)}")
            if line is None:
                pytest.fail(f"the process ended without a line with {text!r}; stderr:\n{''.join(self.lines)}")
            if text in line:
                return

    def finish(self, timeout: float) -> tuple[int, str]:
        """The exit status and the whole of stderr, once the process has ended and every holder of its
        stderr has closed it; fail the test after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        try:
            status = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running after {timeout} s; stderr:\n{''.join(self.lines)}")
        self._reader.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._reader.is_alive():
            pytest.fail(f"the process ended, but its stderr was still held open after {timeout} s (a child "
                        f"left running?); stderr:\n{''.join(self.lines)}")
        return status, "".join(self.lines)
