"""Mutation check: plant realistic bugs in the engine, one at a time, and see each one caught.

Each mutation replaces one piece of text in one file of a copy of this checkout (the working tree,
never the checkout itself) and names what must catch it: ``derive generate OP`` refusing to write
(the proof before writing), or a named test failing.  The mutations are bugs a developer could
write (an off-by-one in a chunk split, a flag asking the wrong input, a tolerance loosened, a
squeeze too many); a mutation that survives is a path the proof or the tests do not see.

    python tools/mutate.py                 # every mutation (a few minutes)
    python tools/mutate.py --list          # their names
    python tools/mutate.py chunk-rows wrt  # some of them, by name (or a unique part of one)

Exit status 0 when every mutation was caught, 1 when one survived, 2 when one no longer applies
(its text is not in the file exactly once: update the mutation with the code).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 900
"""Seconds one check may take (a generate of one operator, or one test)."""


@dataclass(frozen=True)
class Mutation:
    """Replace ``old`` (found exactly once) by ``new`` in ``path``.  Caught when ``derive generate``
    of the ``operators`` refuses to write (the proof), or, where it writes them (into the copy's
    generated/, as a developer regenerates), when one of the ``tests`` (pytest node ids) fails."""

    name: str
    path: str
    old: str
    new: str
    why: str
    operators: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()


PRINTER, KERNEL_VIEW = "derive/targets/numba/printer.py", "derive/targets/kernel/view.py"
NUMPY_RUNTIME, NUMBA_RUNTIME = "templates/kernel/numpy_runtime.py.jinja", "templates/numba/runtime.py.jinja"
MUTATIONS = (
    # -- the five of issue 32, as the code reads now -------------------------------------------------
    Mutation("chunk-rows", PRINTER,
             '"    first_, last_ = (p_ * R_ // P_) * per_, ((p_ + 1) * R_ // P_) * per_"',
             '"    first_, last_ = p_ * (R_ // P_) * per_, (p_ + 1) * (R_ // P_) * per_"',
             "numba: whole rows per part split evenly, the rows left over dropped",
             operators=("matmul",)),
    Mutation("wrt-term-flag", KERNEL_VIEW,
             'f"{_wanted(model, g.input.name)} and {tangent} is not None"',
             'f"{_wanted(model, term.by.name)} and {tangent} is not None"',
             "vjp_jvp: a term's flag asks wrt for the tangent's input, not the gradient's",
             operators=("layernorm",)),
    Mutation("loose-tolerance", "derive/proof/kernel.py", "ROUNDING = 2.0 ** 14", "ROUNDING = 2.0 ** 24",
             "the proof's tolerance 1000 times looser",
             tests=("tests/proof/test_prove_tolerance.py",)),
    Mutation("torch-needs-input-grad", "derive/torch/function.py",
             "                *(g if need else None for g, need in zip(by_inputs, needed[1:])))",
             "                *by_inputs)",
             "torch's double backward returns a gradient for an input that needs none (a Python number)",
             tests=("tests/faces/test_torch_adapter.py::test_numbers_and_none_to_second_order",)),
    Mutation("keepdims-squeeze", "templates/kernel/layouts/axis.py.jinja",
             "        return {{ xp }}.squeeze(value, axis=axis)", "        return {{ xp }}.squeeze(value)",
             "a keepdims cotangent squeezed on every size-1 axis, not the reduced one",
             operators=("reduce_mean",)),
    # -- printers and views --------------------------------------------------------------------------
    Mutation("unit-split", PRINTER,
             '"    first_, last_ = p_ * units_ // P_, (p_ + 1) * units_ // P_"',
             '"    first_, last_ = p_ * (units_ // P_), (p_ + 1) * (units_ // P_)"',
             "numba: units spread over rows split evenly, the units left over dropped",
             operators=("layernorm",)),
    Mutation("causal-diagonal", "derive/targets/numpy/printer.py",
             'return f"np.less_equal({self._print(expr.args[0])}, {self._print(expr.args[1])})"',
             'return f"np.less({self._print(expr.args[0])}, {self._print(expr.args[1])})"',
             "NumPy: a mask j <= i printed j < i (causal attention loses the diagonal)",
             operators=("scaled_dot_product_attention",)),
    Mutation("naive-softplus", "derive/targets/array_api/printer.py",
             'return f"xp.logaddexp(0.0, {self._print(expr.args[0])})"',
             'return f"xp.log(1.0 + xp.exp({self._print(expr.args[0])}))"',
             "Array API: softplus as log(1 + exp(x)), which overflows far out",
             operators=("softplus",),
             tests=("tests/targets/kernel/test_kernels.py::test_saturating_activations_stay_finite_far_out",)),
    Mutation("softmax-unshifted", KERNEL_VIEW,
             "shift=tuple(_shift(model, name, dim, printer) for name, dim in model.shift_invariant),",
             "shift=(),", "the NumPy kernels' softmax no longer subtracts the row maximum",
             operators=("softmax",),
             tests=("tests/targets/kernel/test_kernels.py::test_softmax_family_is_stable_for_large_logits",)),
    # -- layouts and runtimes ------------------------------------------------------------------------
    Mutation("wrt-ignored", "templates/kernel/checks.py.jinja", " and (wrt is None or name in wrt)", "",
             "vjp computes (and returns) the gradients left out of wrt",
             operators=("mul",)),
    Mutation("unbroadcast-keepdims", NUMPY_RUNTIME,
             "        value = value.sum(axis=squeezed, keepdims=True)", "        value = value.sum(axis=squeezed)",
             "the gradient of a broadcast input summed without keeping its size-1 axes",
             operators=("mul",)),
    Mutation("channels-spatial", "templates/kernel/layouts/channels.py.jinja",
             "(shape[0], channels, math.prod(shape[2:]))", "(shape[0], channels, shape[-1])",
             "x (N, C, *spatial) viewed with its last axis as the spatial one (wrong for (N, C))",
             operators=("batchnorm",)),
    Mutation("chunk-slots-summed", NUMBA_RUNTIME,
             "            return self.array.sum(axis=0)", "            return self.array[0]",
             "numba: a parameter's gradient taken from the first chunk's slot, not all of them",
             operators=("layernorm",)),
    # -- schedule and calculus -----------------------------------------------------------------------
    Mutation("mean-uncorrected", "derive/schedule/centring.py",
             "                return sp.Add(Kept(entry - mean), -correction, *rest)", "                return node",
             "centred values without the two-pass correction of the mean's rounding",
             operators=("layernorm",),
             tests=("tests/targets/kernel/test_precision.py::test_float32_gradients_hold_for_large_means",)),
    Mutation("buffer-reused-while-alive", "derive/schedule/inplace.py",
             "if not once or name in self.dead or self.held(name) or self.alive_after(name, position):",
             "if not once or name in self.dead or self.held(name):",
             "a temporary's buffer overwritten while a later step still reads it",
             operators=("layernorm", "batchnorm")),
    Mutation("delta-unsubstituted", "derive/calculus/rules.py",
             "            body = substitute_index(without_factor(expr.function, delta), var, other)",
             "            body = without_factor(expr.function, delta)",
             "sum_j delta_jk a_j collapsed to a_j: the summation index not replaced by k",
             operators=("rmsnorm",)),
    # -- adapters ------------------------------------------------------------------------------------
    Mutation("torch-jvp-misaligned", "derive/torch/function.py",
             "for name, t in zip(signature.inputs, tangents[3:])]",
             "for name, t in zip(signature.inputs, tangents[2:])]",
             "torch's forward mode reads each input's tangent one slot off",
             tests=("tests/faces/test_torch_adapter.py::test_gradcheck_reverse_and_forward_mode",)),
    Mutation("jax-second-order-params", "derive/jax.py",
             "        by_inputs = kernel.vjp_jvp(cotangent, tangents, *inputs, **params)",
             "        by_inputs = kernel.vjp_jvp(cotangent, tangents, *inputs)",
             "JAX's second order drops the keyword parameters (eps at its default)",
             tests=("tests/faces/test_jax_adapter.py::test_second_order_reverse_over_reverse",
                    "tests/faces/test_jax_adapter.py::test_numbers_and_none_to_second_order")),
    Mutation("mean-count", "derive/display/means.py", "                powers[base] += k", "                pass",
             "a sum printed as a mean keeps the count it was divided by (layernorm's x-bar off by n)",
             operators=("layernorm",)),
    Mutation("tangent-power", "derive/calculus/tangent.py",
             "    rate = sp.Add(*[exponent * tangent(base) / base",
             "    rate = sp.Add(*[tangent(base) / base",
             "the second order's product rule forgets the power of a scale (1/sigma differentiated as sigma)",
             operators=("layernorm",)),
    Mutation("weights-normaliser", "derive/targets/latex/weights.py",
             "                    replaced[power] = weights.normaliser.at((query,)) * base[query, key]",
             "                    replaced[power] = base[query, key]",
             "attention's exponentials written as P without the normaliser Z (P = e^s, not e^s / Z)",
             operators=("scaled_dot_product_attention",)),
    Mutation("block-short", PRINTER,
             'f"for l_ in range({BLOCK}):"',
             'f"for l_ in range({BLOCK} - 1):"',
             "numba: a sum in blocks skips each block's last entry (only axes over 255 long have a block)",
             operators=("softmax",),
             tests=("tests/targets/numba/test_numba_target.py::"
                    "test_sums_in_blocks_match_the_numpy_kernel_on_long_axes[softmax]",)),
    Mutation("letters-clash", "derive/display/latex.py",
             "            if self.letter(idx) in scoped.values():",
             "            if False:",
             "a VJP shown in the output's letters with its sums left on a letter the free index now takes",
             operators=("softmax",)),
    Mutation("index-capture", "derive/calculus/indices.py",
             "    expr = _readable(expr, taken)\n",
             "",
             "a definition written in at a use site whose index its own sum binds (captured)",
             tests=("tests/calculus/test_indices.py::"
                    "test_a_definition_written_in_where_its_sum_variable_is_a_free_index_is_not_captured",)),
)
"""Grouped by the layer they break; each is a bug a developer could write."""


def applies(mutation: Mutation, root: Path = ROOT) -> str | None:
    """None when ``mutation.old`` occurs exactly once in its file under ``root``; else why not."""
    path = root / mutation.path
    if not path.is_file():
        return f"{mutation.path} does not exist"
    count = path.read_text(encoding="utf-8").count(mutation.old)
    return None if count == 1 else f"{mutation.path} holds its text {count} times, not once"


def copy_checkout(target: Path) -> None:
    """The checkout's files as they are now (tracked and new, not ignored ones) copied to ``target``."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True, timeout=60).stdout.decode().split("\0")
    for relative in filter(None, listed):
        source = ROOT / relative
        if source.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / relative)


def mutate(root: Path, mutation: Mutation) -> None:
    path = root / mutation.path
    path.write_text(path.read_text(encoding="utf-8").replace(mutation.old, mutation.new, 1), encoding="utf-8")


def _environment(root: Path, scratch: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(root), "DERIVE_CACHE_DIR": str(scratch / "cache"),
            "PYTHONDONTWRITEBYTECODE": "1"}


def generate(root: Path, scratch: Path, operators: tuple[str, ...]) -> tuple[bool, str]:
    """``derive generate OPERATORS`` into the copy's generated/: (refused, what it said)."""
    done = subprocess.run([sys.executable, "-m", "derive.cli", "generate", *operators, "--no-cache", "-q",
                           "--jobs", "1"], cwd=root, env=_environment(root, scratch), capture_output=True,
                          text=True, timeout=TIMEOUT)
    last = (done.stderr.strip().splitlines() or ["written"])[-1]
    return done.returncode != 0, f"derive generate {' '.join(operators)}: exit {done.returncode}: {last[:200]}"


def test(root: Path, scratch: Path, node: str) -> tuple[bool, str]:
    """Whether the pytest node ``node`` fails: (failed, its summary line)."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "-x", node],
                          cwd=root, env=_environment(root, scratch), capture_output=True, text=True,
                          timeout=TIMEOUT)
    summary = (done.stdout.strip().splitlines() or [""])[-1]
    return done.returncode == 1, f"{node}: {summary[:200]}"


def run(mutation: Mutation | None, operators: tuple[str, ...], tests: tuple[str, ...]) -> list[tuple[bool, str]]:
    """Apply ``mutation`` (None: none) to a fresh copy, regenerate the ``operators``, then (unless
    that was refused) run the ``tests``: (caught, what it said) for each check run."""
    name = mutation.name if mutation else "baseline"
    with tempfile.TemporaryDirectory(prefix=f"mutation-{name}-") as folder:
        root, scratch = Path(folder) / "checkout", Path(folder) / "scratch"
        root.mkdir()
        scratch.mkdir(mode=0o700)
        copy_checkout(root)
        if mutation is not None:
            mutate(root, mutation)
        results = [generate(root, scratch, operators)] if operators else []
        if results and results[0][0]:
            return results
        return results + [test(root, scratch, node) for node in tests]


def baseline(mutations: list[Mutation]) -> list[str]:
    """The checks that fail without any mutation (each would 'catch' anything): none, we hope."""
    operators = tuple(sorted({op for m in mutations for op in m.operators}))
    nodes = tuple(sorted({node for m in mutations for node in m.tests}))
    return [said for caught, said in run(None, operators, nodes) if caught]


def chosen(names: list[str]) -> list[Mutation]:
    if not names:
        return list(MUTATIONS)
    picked = []
    for name in names:
        found = [m for m in MUTATIONS if m.name == name] or [m for m in MUTATIONS if name in m.name]
        if len(found) != 1:
            raise SystemExit(f"mutate: {name!r} names {len(found)} mutations; --list shows them")
        picked.append(found[0])
    return picked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutations and what must catch each")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip running the checks on the unmutated copy first (each must pass there)")
    args = parser.parse_args(argv)
    if args.list:
        for m in MUTATIONS:
            print(f"{m.name:28} {m.path}: {m.why}")
        return 0
    mutations = chosen(args.names)
    stale = [(m, problem) for m in mutations if (problem := applies(m)) is not None]
    for m, problem in stale:
        print(f"{m.name}: does not apply: {problem}")
    if stale:
        return 2
    failing = [] if args.no_baseline else baseline(mutations)
    if failing:
        print("these checks fail without any mutation, so they catch nothing:\n  " + "\n  ".join(failing))
        return 2
    survived = []
    for m in mutations:
        started = time.monotonic()
        results = run(m, m.operators, m.tests)
        caught = any(caught for caught, _ in results)
        print(f"{'caught  ' if caught else 'SURVIVED'} {m.name} ({time.monotonic() - started:.0f} s): {m.why}")
        for _, said in results:
            print(f"           {said}")
        if not caught:
            survived.append(m.name)
    print(f"{len(mutations) - len(survived)} of {len(mutations)} mutations caught"
          + (f"; survived: {', '.join(survived)}" if survived else ""))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
