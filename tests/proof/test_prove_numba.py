"""The numba kernels' proof: their loops run at chunkings small enough (``CHUNKINGS``) that the proof's
batches cross every boundary of the split into chunks, interpreted before a kernel is written and
compiled here (the battery's kernels, which its tests compile anyway).

A kernel whose chunks start or end a row off is refused; the proof's calls reach each branch of the
split; the compiled loops, run on threads of their own, agree with the oracle at the same calls.
"""

from __future__ import annotations

import pytest
from helpers import GENERATED
from helpers.kernels import NUMBA_BATTERY, load_kernel

from derive.model import registry
from derive.proof.kernel import ProofError
from derive.targets.numba import CHUNKINGS, TARGET, load_interpreted, prove_chunked

WHOLE_ROWS = "    first_, last_ = (p_ * R_ // P_) * per_, ((p_ + 1) * R_ // P_) * per_\n"
UNITS = "    first_, last_ = p_ * units_ // P_, (p_ + 1) * units_ // P_\n"


def _text(name: str) -> str:
    return (GENERATED / "numba" / f"{name}.py").read_text(encoding="utf-8")


@pytest.mark.parametrize("name,old,new", [
    # each part's first row from an even split: a row is done by two parts (added in twice)
    ("cross_entropy", WHOLE_ROWS, "    first_, last_ = p_ * (R_ // P_) * per_, ((p_ + 1) * R_ // P_) * per_\n"),
    # and its last row too: the rows left over after an even split are dropped
    ("matmul", WHOLE_ROWS, "    first_, last_ = p_ * (R_ // P_) * per_, (p_ + 1) * (R_ // P_) * per_\n"),
    # units spread over rows, split evenly: the units left over are dropped
    ("layernorm", UNITS, "    first_, last_ = p_ * (units_ // P_), (p_ + 1) * (units_ // P_)\n"),
])
def test_a_chunk_that_starts_or_ends_a_row_off_is_refused(name, old, new):
    text = _text(name)
    assert old in text
    with pytest.raises(ProofError, match=rf"operator '{name}'.*loops interpreted, \d threads x \d chunks\): "):
        TARGET.proofs[".py"](registry.get(name), text.replace(old, new), 0)


def test_the_proof_reaches_every_branch_of_the_chunking():
    """Each call's split (rows, units, chunks, whole rows per chunk or not, threads), over the proof
    of an operator whose results add across a row's units (whole rows per chunk) and one whose do not."""
    seen = []
    for name in ("cross_entropy", "layernorm"):
        model = registry.get(name)
        module = load_interpreted(model, _text(name))
        start = module._Loop.start

        def recorded(loop, start=start, module=module):
            start(loop)
            seen.append((loop.rows, loop.count, loop.chunks, loop.aligned, loop.parts, module._threads()))

        module._Loop.start = recorded
        prove_chunked(model, module, 0, "loops interpreted")
    assert {threads for *_, threads in seen} == {threads for threads, *_ in CHUNKINGS}
    assert any(aligned and rows > chunks and rows % chunks for rows, _, chunks, aligned, *_ in seen)
    assert any(not aligned and rows > 1 and count > chunks and count % chunks
               for rows, count, chunks, aligned, *_ in seen)
    assert any(rows == 1 for rows, *_ in seen)
    assert any(1 < rows < threads for rows, *_, threads in seen)
    assert any(aligned and parts > 1 for _, _, _, aligned, parts, _ in seen)  # a chunk's parts, one after another
    assert any(not aligned and parts > 1 for _, _, _, aligned, parts, _ in seen)


@pytest.mark.parametrize("name", NUMBA_BATTERY)
def test_the_compiled_loops_prove_at_the_chunk_boundaries(name):
    """The battery's kernels compiled (as the kernel tests run them: one compilation per function and
    dtype, numba's cache) and run on threads without the GIL, at the interpreted proof's chunkings and
    every layout and batch, at its first assignment of core sizes (the oracle's work, the slow part, a
    third: the compiled loops take the same branches at the others)."""
    kernel = load_kernel(name, "numba")
    before = kernel._threads, kernel._CHUNKS_PER_THREAD, kernel._PART_WORK
    prove_chunked(registry.get(name), kernel, 0, "loops compiled", first_sizes=1)
    assert (kernel._threads, kernel._CHUNKS_PER_THREAD, kernel._PART_WORK) == before and not kernel._POOL
