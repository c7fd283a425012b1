"""The ``derive bench`` command line; the work is in ``derive.bench.run``, imported when it runs
(so that the other commands never load NumPy)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .cases import DTYPES


def add_bench_command(commands: argparse._SubParsersAction) -> None:
    text = "time the generated kernels beside hand-written NumPy, PyTorch and a copy; time derivation"
    bench = commands.add_parser("bench", help=text, description=text[0].upper() + text[1:] + ".")
    bench.add_argument("operators", nargs="*", metavar="OPERATOR",
                       help="operators to measure (default: those with baselines, then the rest of the registry)")
    bench.add_argument("--dtype", action="append", choices=DTYPES, help="float32 or float64 (default: both)")
    bench.add_argument("--json", type=Path, metavar="FILE", help="write every measurement to FILE")
    bench.add_argument("--markdown", type=Path, metavar="FILE", help="write the summary table to FILE")
    bench.add_argument("--quick", action="store_true", help="tiny shapes and 3 repeats: checks that it all runs")
    bench.add_argument("--repeats", type=_positive, help="timed calls per candidate (default 7, --quick 3)")
    bench.add_argument("--generated", type=Path, metavar="FOLDER",
                       help="a folder `derive generate --out` wrote, whose kernels to measure (default: the "
                            "kernels derive ships)")
    bench.add_argument("--no-derivation", action="store_true", help="do not time `derive generate`")
    bench.add_argument("--no-kernels", action="store_true", help="only time `derive generate`")
    bench.add_argument("--no-numba", action="store_true",
                       help="leave the numba kernels out (no compiling, no new process for the cached first call)")
    bench.add_argument("--training", action="store_true",
                       help="also time training steps through derive.torch beside torch.nn's, eager and under "
                            "torch.compile: the norms and softmaxes, and a pre-norm MLP block (needs torch)")
    bench.add_argument("--seed", type=int, default=0, help="random inputs' seed (default 0)")
    bench.set_defaults(run=run_bench)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return int(text)


def run_bench(args: argparse.Namespace) -> int:
    from .run import run

    return run(args)
