"""Draw ``derive bench --json`` results as a PNG: bandwidth share and peak memory of each vjp.

Usage: ``python -m derive.bench.plot bench.json docs/bench.png`` (needs matplotlib, in the
``bench`` extra).  One row of panels per dtype; bars are vjps: the share of NumPy's copy
bandwidth they reach (longer is faster) and their peak memory over the input size.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .cases import CLOSED_VJP, GENERATED_VJP, NUMBA_VJP, PLAIN_VJP, TORCH_VJP

SERIES = ((GENERATED_VJP, "#1b9e77"), (NUMBA_VJP, "#e7298a"), (CLOSED_VJP, "#7570b3"), (PLAIN_VJP, "#bdbdbd"),
          (TORCH_VJP, "#d95f02"))


def _label(result: dict) -> str:
    return f"{result['op']} {'×'.join(map(str, result['shape']))}"


def draw(results: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dtypes = list(dict.fromkeys(r["dtype"] for r in results))
    cases = list(dict.fromkeys(_label(r) for r in results))
    figure, axes = plt.subplots(len(dtypes), 2, figsize=(12, 0.5 + 0.55 * len(cases) * len(dtypes) + 1.2),
                                squeeze=False, gridspec_kw={"width_ratios": (3, 2)})
    width = 0.8 / len(SERIES)
    for row, dtype in enumerate(dtypes):
        chosen = {_label(r): r for r in results if r["dtype"] == dtype}
        speed, memory = axes[row]
        for offset, (name, colour) in enumerate(SERIES):
            for position, label in enumerate(cases):
                found = next((x for x in chosen.get(label, {"rows": []})["rows"] if x["name"] == name), None)
                if found is None or found["disagrees"]:
                    continue
                y = position + (offset - len(SERIES) / 2 + 0.5) * width
                first = position == next(i for i, c in enumerate(cases) if c in chosen)
                speed.barh(y, found["copy_pct"], height=width, color=colour, label=name if first and row == 0 else None)
                if found["peak_ratio"] is not None:
                    memory.barh(y, found["peak_ratio"], height=width, color=colour)
        for axis in (speed, memory):
            axis.set_yticks(range(len(cases)), cases)
            axis.invert_yaxis()
            axis.grid(axis="x", alpha=0.3)
        speed.set_title(f"{dtype}: vjp bandwidth, % of NumPy's copy (longer is faster)", fontsize=10)
        memory.set_title(f"{dtype}: vjp peak memory / input size (target 4)", fontsize=10)
        memory.axvline(4, color="k", lw=0.8, ls="--")
    figure.legend(loc="upper center", ncol=len(SERIES), fontsize=9, frameon=False)
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    figure.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m derive.bench.plot BENCH.json OUT.png", file=sys.stderr)
        return 2
    results = json.loads(Path(args[0]).read_text(encoding="utf-8"))["kernels"]
    if not results:
        print(f"derive.bench.plot: {args[0]} holds no kernel measurements", file=sys.stderr)
        return 1
    Path(args[1]).parent.mkdir(parents=True, exist_ok=True)
    draw(results, Path(args[1]))
    print(f"derive.bench.plot: wrote {args[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
