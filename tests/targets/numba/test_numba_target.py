"""The numba target beyond the kernel battery (which runs on it through ``kernel_target``): written
without numba, a clear error on import without it, numba's cache files never taken for output, and
chunks split into parts giving what whole chunks give (test_numba_processes.py: processes)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
from helpers import GENERATED, OPERATORS, ROOT
from helpers.kernels import float_positions, load_kernel, make_inputs, model_of, shape_cases

from derive.cli import main
from derive.pipeline.output import MANIFEST

WITHOUT_NUMBA = "import sys; sys.modules['numba'] = None  # as if numba were not installed\n"


def run_without_numba(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_NUMBA + code], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                                       **{k: v for k, v in __import__("os").environ.items()
                                                          if k == "DERIVE_CACHE_DIR"}})


def test_importing_a_numba_kernel_without_numba_names_the_extra(tmp_path):
    done = run_without_numba(
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('k', {str(GENERATED / 'numba' / 'relu.py')!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n", tmp_path)
    assert done.returncode != 0
    assert "ImportError: the generated numba kernels need numba" in done.stderr and "derive[numba]" in done.stderr


def test_generate_writes_and_proves_numba_kernels_without_numba(tmp_path):
    done = run_without_numba(
        "from derive.cli import main\n"
        "raise SystemExit(main(['generate', 'layernorm', '--out', 'gen', '-q']))\n", tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "gen" / "numba" / "layernorm.py").read_text() == (GENERATED / "numba" / "layernorm.py").read_text()


def test_numba_cache_files_are_not_generated_output(tmp_path):
    out = tmp_path / "gen"
    assert main(["generate", "relu", "--out", str(out), "-q"]) == 0
    kernel = load_kernel("relu", "numba", out / "numba")
    assert kernel.forward(__import__("numpy").ones(3)).tolist() == [1.0, 1.0, 1.0]
    cached = list((out / "numba" / "__pycache__").glob("relu.*.nb[ic]"))
    assert cached, "numba cached the compiled loops beside the kernel"
    assert "__pycache__" not in (out / MANIFEST).read_text()
    assert main(["check", "relu", "--out", str(out), "-q"]) == 0  # not stale, not foreign output
    assert main(["generate", "relu", "--out", str(out), "-q"]) == 0 and all(p.exists() for p in cached)


def test_compiled_exp_is_within_one_ulp_and_keeps_the_special_values():
    """The kernels' exp (a polynomial LLVM vectorises) against NumPy's, in float64 and in float32, over
    the whole finite range, the subnormal results, overflow, and inf, -inf and NaN."""
    import numba
    import numpy as np

    kernel = load_kernel("softmax", "numba")
    exp = kernel._exp

    @numba.njit
    def apply(values):
        out = np.empty_like(values)
        for i in range(values.size):
            out[i] = exp(values[i])
        return out

    for dtype, top in ((np.float64, 720.0), (np.float32, 110.0)):
        values = np.concatenate([np.linspace(-top * 1.05, top, 400_001),
                                 np.random.default_rng(0).standard_normal(100_000) * 8,
                                 [np.inf, -np.inf, np.nan, 0.0, -0.0]]).astype(dtype)
        got = apply(values)
        assert got.dtype == dtype
        with np.errstate(over="ignore"):
            want = np.exp(values.astype(np.float64)).astype(dtype)  # float32: rounded once from float64
        normal = np.isfinite(want) & (want >= np.finfo(dtype).tiny)
        ulp = np.spacing(want[normal])
        assert np.max(np.abs(got[normal] - want[normal]) / ulp) <= 1.0, dtype
        subnormal = np.isfinite(want) & ~normal
        assert np.allclose(got[subnormal], want[subnormal], rtol=0, atol=2 * np.finfo(dtype).smallest_subnormal)
        assert np.array_equal(np.isnan(got), np.isnan(want)) and np.array_equal(np.isinf(got), np.isinf(want))


def test_maxima_in_lanes_match_the_numpy_kernel_at_every_length_and_on_nan_and_inf():
    """The compiled maxima run in 16 lanes plus a remainder loop: rows shorter than, equal to and
    longer than the lanes, with NaN and infinities, give what the NumPy kernel gives (softmax's and
    log_softmax's shift)."""
    import numpy as np

    rng = np.random.default_rng(3)
    for name in ("softmax", "log_softmax"):
        compiled, reference = load_kernel(name, "numba"), load_kernel(name, "numpy")
        for n in (1, 5, 16, 17, 40):
            x = (rng.standard_normal((4, n)) * 4).astype(np.float32)
            x[1, n // 2] = np.nan
            x[2, -1] = np.inf
            x[3, 0] = -np.inf
            dy = rng.standard_normal((4, n)).astype(np.float32)
            with np.errstate(all="ignore"):
                for got, want in ((compiled.forward(x), reference.forward(x)),
                                  (compiled.vjp(dy, x)[0], reference.vjp(dy, x)[0])):
                    assert got.dtype == np.float32
                    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6, equal_nan=True, err_msg=f"{name} n={n}")


@pytest.mark.parametrize("name", ["mse_loss"])  # of the battery: compiled on the numba group's worker
def test_each_compiled_loop_is_compiled_once_per_dtype(name):
    """The loops read their inputs as read-only arrays whatever the caller passed (writable,
    read-only, broadcast against the other input, absent tangents): numba compiles a function once
    per argument types, so each loop has one signature per dtype (mse_loss's jvp was compiled nine
    times by the kernel tests, once per mix of writable and read-only inputs)."""
    import numba
    import numpy as np

    kernel = load_kernel(name, "numba")
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((1, 3))
    frozen = a.copy()
    frozen.flags.writeable = False
    for x, y in ((a, b), (frozen, b), (b, a), (np.broadcast_to(b, (2, 3)), frozen)):
        kernel.forward(x, y)
        kernel.vjp(1.0, x, y)
        kernel.jvp((x, None), x, y)
        kernel.vjp_jvp(1.0, (None, y), x, y)
    for loops in (kernel._forward_loops, kernel._vjp_loops, kernel._jvp_loops, kernel._vjp_jvp_loops):
        dtypes = [next(t.dtype for t in signature if isinstance(t, numba.types.Array)) for signature in loops.signatures]
        assert len(dtypes) == len(set(dtypes)), f"{loops.__name__}: {loops.signatures}"


@pytest.mark.parametrize("name", ["layernorm", "batchnorm", "group_norm", "matmul", "cross_entropy", "mul", "reduce_mean"])
def test_chunks_split_into_parts_give_exactly_what_whole_chunks_give(name, monkeypatch):
    """A part is a bounded share of a chunk's units (so that Ctrl-C lands soon); a chunk's parts run
    in turn on one thread and add into the chunk's slot.  Two chunks, a part per unit, against one
    part per chunk: every result of forward, vjp, jvp and vjp_jvp is bitwise the same (the sums are
    made in the same order), and the loops did run in more parts than chunks."""
    import numpy as np

    kernel = load_kernel(name, "numba")
    rng = np.random.default_rng(7)
    sizes, batch = shape_cases(name)[-1]
    inputs, params = make_inputs(name, sizes, batch, rng)
    tangents = [rng.standard_normal(a.shape) if p in float_positions(name) else None for p, a in enumerate(inputs)]
    cotangent = rng.standard_normal(np.shape(kernel.forward(*inputs, **params)))

    def results():
        return [kernel.forward(*inputs, **params), *kernel.vjp(cotangent, *inputs, **params),
                kernel.jvp(tangents, *inputs, **params), *kernel.vjp_jvp(cotangent, tangents, *inputs, **params)]

    monkeypatch.setattr(kernel, "_threads", lambda: 2)
    monkeypatch.setattr(kernel, "_CHUNKS_PER_THREAD", 1)
    whole = results()
    calls = []
    for loops in [n for n in vars(kernel) if "_loops" in n]:
        compiled = getattr(kernel, loops)
        monkeypatch.setattr(kernel, loops, lambda chunk, part, *rest, compiled=compiled: (
            calls.append((chunk, part)), compiled(chunk, part, *rest))[1])
    monkeypatch.setattr(kernel, "_PART_WORK", 1)
    for got, want in zip(results(), whole, strict=True):
        assert (got is None) == (want is None) and (got is None or np.array_equal(got, want)), name
    assert len(set(calls)) > len({chunk for chunk, _ in calls}) == 2, calls


def test_numba_caches_in_a_private_folder_of_the_derive_cache_or_warns_and_caches_nowhere(tmp_path, monkeypatch):
    """A kernel whose ``__pycache__`` others can write caches in a folder of its own under
    $DERIVE_CACHE_DIR/numba, made mode 0700; when that cache folder is in one everyone can write
    (no sticky bit: another user could swap it), there is no cache and a warning names it."""
    kernel = load_kernel("relu", "numba")
    (tmp_path / "kernels" / "__pycache__").mkdir(parents=True)
    (tmp_path / "kernels" / "__pycache__").chmod(0o777)
    source = str(tmp_path / "kernels" / "relu.py")
    monkeypatch.setenv("DERIVE_CACHE_DIR", str(tmp_path / "mine"))
    folder = kernel._cache_folder(source)
    assert folder is not None and folder.startswith(str(tmp_path / "mine" / "numba" / "kernels_"))
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    (tmp_path / "everyone").mkdir()
    (tmp_path / "everyone").chmod(0o777)
    monkeypatch.setenv("DERIVE_CACHE_DIR", str(tmp_path / "everyone"))
    with pytest.warns(RuntimeWarning, match="cache of the relu kernel is off: .*everyone.* another user"):
        assert kernel._cache_folder(source) is None


BLOCKED = [name for name in OPERATORS if "% 256" in (GENERATED / "numba" / f"{name}.py").read_text()]
"""The kernels with a sum in blocks of 256 entries (``printer.Emitter.blocks``): the proof's axes of
sizes 1 to 4 run only the entries left over after the blocks."""


@pytest.mark.parametrize("name", BLOCKED)
def test_sums_in_blocks_match_the_numpy_kernel_on_long_axes(name):
    """Each axis in turn 600 long (two whole blocks and 88 entries left over), the others short: the
    compiled forward, vjp, jvp and vjp_jvp give the NumPy kernel's values (proven, and with no branch
    on a size) in float64, and in float32 are about as close to the float64 values as the NumPy
    kernel's float32 ones are (within 4 times its error, or 1e-4 of the largest value: a float32 row
    with a small variance loses digits in both, in other entries)."""
    import numpy as np

    compiled, reference = load_kernel(name, "numba"), load_kernel(name, "numpy")
    model = model_of(name)
    floats = float_positions(name)
    rng = np.random.default_rng(5)
    for long in model.dims():
        sizes = {str(d): 600 if d == long else 2 + position for position, d in enumerate(model.dims())}
        arrays, params = make_inputs(name, sizes, (), rng)
        cotangent = rng.standard_normal(np.shape(reference.forward(*arrays, **params)))
        tangents = [rng.standard_normal(np.shape(a)) if p in floats else None for p, a in enumerate(arrays)]
        calls = {"forward": lambda k, a, c, t: k.forward(*a, **params),
                 "vjp": lambda k, a, c, t: k.vjp(c, *a, **params),
                 "jvp": lambda k, a, c, t: k.jvp(t, *a, **params),
                 "vjp_jvp": lambda k, a, c, t: k.vjp_jvp(c, t, *a, **params)}
        single = ([a.astype(np.float32) if p in floats else a for p, a in enumerate(arrays)],
                  cotangent.astype(np.float32), [None if t is None else t.astype(np.float32) for t in tangents])
        for what, call in calls.items():
            exact = _values(call(reference, arrays, cotangent, tangents))
            for got, want in zip(_values(call(compiled, arrays, cotangent, tangents)), exact):
                np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * _scale(want), err_msg=f"{name} {what} {sizes}")
            for got, theirs, want in zip(_values(call(compiled, *single)), _values(call(reference, *single)), exact):
                assert got.dtype == theirs.dtype == np.float32, (name, what)
                error, allowed = np.max(np.abs(got - want)), max(4 * np.max(np.abs(theirs - want)), 1e-4 * _scale(want))
                assert error <= allowed, f"{name} {what} {sizes}: float32 error {error:.3g}, the NumPy kernel's {allowed:.3g}"


def _values(result) -> list:
    import numpy as np

    return [np.asarray(v) for v in (result if isinstance(result, tuple) else (result,)) if v is not None]


def _scale(values) -> float:
    import numpy as np

    return float(np.max(np.abs(values))) if np.size(values) else 1.0
