"""Run ``derive bench``: the kernels case by case, the derivation timing, the reports.

Prints one table per case, the Markdown summary and the issue's targets; ``--json FILE`` keeps
everything (every repeat, the machine, the BLAS in use) for ``python -m derive.bench.plot``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np
import sympy as sp

from .. import api
from ..errors import NotGeneratedError, OutputError
from ..model import registry
from ..version import __version__
from . import cases as case_table
from . import derivation, report, torch_ref
from .cases import DTYPES
from .kernels import Skip, run_case


def machine() -> dict:
    info = {"python": platform.python_version(), "numpy": np.__version__, "sympy": sp.__version__,
            "derive": __version__, "platform": platform.platform(), "cpus": os.cpu_count(),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "env": {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP", "MKL"))}}
    info.update(torch_ref.describe())
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return info
    info["threadpools"] = [{k: pool.get(k) for k in ("internal_api", "architecture", "num_threads", "version")}
                           for pool in threadpool_info()]
    return info


def run(args: argparse.Namespace) -> int:
    for name in args.operators:
        if not case_table.known(name):
            registry.factory(name)  # raises UnknownOperatorError naming close matches
    args.generated = kernel_folder(args)
    for path in filter(None, (args.json, args.markdown)):  # before minutes of measuring
        refuse_report_path(path)
    say = lambda text: print(text, flush=True)
    results: dict = {"machine": machine(), "settings": settings(args), "kernels": [], "notes": []}
    say(describe_machine(results["machine"]))
    if not args.no_derivation:
        ops = [name for name in args.operators if name in registry.names()]
        results["derivation"] = derivation.time_generation(ops)
        say(report.derivation_text(results["derivation"]))
    if not args.no_kernels:
        measure_kernels(args, results, say)
    if args.training:
        measure_training(args, results, say)
    finish(args, results, say)
    return 1 if any(r["disagrees"] for k in results["kernels"] for r in k["rows"]) else 0


def kernel_folder(args: argparse.Namespace) -> Path:
    """The folder whose kernels are measured: ``--generated``, else the kernels derive ships (from any
    working folder); a ``NotGeneratedError`` when it holds none of the operators' (nothing to measure)."""
    folder = args.generated if args.generated is not None else api.generated_folder()
    ops = list(dict.fromkeys(case.op for case in case_table.plan(args.operators, args.quick)))
    if not args.no_kernels and not any((folder / "numpy" / f"{op}.py").is_file() for op in ops):
        raise NotGeneratedError(f"no kernel to measure: {folder / 'numpy'} holds none of {', '.join(ops)}; give "
                                "--generated the folder `derive generate --out` wrote")
    return folder


def refuse_report_path(path: Path) -> None:
    """``OutputError`` for a ``--json``/``--markdown`` file that cannot be written: its folder does
    not exist, or it is a folder."""
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder")
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: {path.parent} is not a folder")


def settings(args: argparse.Namespace) -> dict:
    repeats = args.repeats or (3 if args.quick else 7)
    return {"quick": args.quick, "repeats": repeats, "warmup": 1, "dtypes": args.dtype or list(DTYPES),
            "generated": str(args.generated), "seed": args.seed, "operators": args.operators,
            "numba": not args.no_numba}


def measure_kernels(args: argparse.Namespace, results: dict, say) -> None:
    options = results["settings"]
    rng = np.random.default_rng(args.seed)
    for case in case_table.plan(args.operators, args.quick):
        for dtype in options["dtypes"]:
            try:
                result = run_case(case, np.dtype(dtype), args.generated, options["repeats"], options["warmup"], rng,
                                  numba=not args.no_numba)
            except Skip as skip:
                note = f"{case.op}: skipped ({skip})"
                if note not in results["notes"]:
                    results["notes"].append(note)
                    say(note)
                break
            results["kernels"].append(result)
            say(report.case_text(result))


def measure_training(args: argparse.Namespace, results: dict, say) -> None:
    """The training-step table (``derive.bench.training``, which imports torch: a clear error without it)."""
    if torch_ref.torch_module() is None:
        raise NotGeneratedError("derive bench --training needs torch: pip install torch")
    from . import training

    results["training"] = training.measure(args.quick, results["settings"]["repeats"], say)


def finish(args: argparse.Namespace, results: dict, say) -> None:
    categories = {name: registry.get(name).category for name in registry.names()}
    results["targets"] = report.targets(results["kernels"], results.get("derivation"), categories)
    tables = []
    if results["kernels"]:
        table = report.markdown_table(results["kernels"])
        second = report.second_order_table(results["kernels"])
        table += "\n\nSecond order:\n\n" + second if second else ""
        numba = report.numba_table(results["kernels"])
        if numba.count("\n") > 1:
            table += "\n\n" + numba
        tables.append(table)
    if "training" in results:
        from .training import markdown_table

        tables.append(markdown_table(results["training"]))
    for table in tables:
        say("\n" + table)
    if tables and args.markdown:
        args.markdown.write_text("\n\n".join(tables) + "\n", encoding="utf-8")
    say("\n" + report.targets_text(results["targets"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        say(f"derive: wrote {args.json}")


def describe_machine(info: dict) -> str:
    pools = ", ".join(f"{p['internal_api']} {p['architecture'] or ''} x{p['num_threads']}".replace("  ", " ")
                      for p in info.get("threadpools", []))
    torch = f"torch {info['torch']} ({info['torch_threads']} threads)" if info.get("torch") else "torch not installed"
    load = f", load average {info['load_average'][0]:.2f}" if info.get("load_average") else ""
    return (f"derive {info['derive']}, Python {info['python']}, NumPy {info['numpy']}, {torch}, "
            f"{info['cpus']} CPUs{load}" + (f", BLAS: {pools}" if pools else "")
            + (f", env {info['env']}" if info["env"] else ""))

