"""How tall each result fragment sets in one column of a plain 10 pt two-column article.

Each ``generated/latex/<op>-result.tex`` is set in a box one column wide in
``\\documentclass[10pt,twocolumn]{article}`` with the packages its header names (pdflatex, draft
mode), and its height is printed beside the column's (the page's \\textheight), with the columns it
takes.  The figures the README gives for the fragments come from here.

    python tools/fragment_heights.py              # every operator
    python tools/fragment_heights.py layernorm    # some of them
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LATEX = ROOT / "generated" / "latex"


def heights(names: list[str]) -> dict[str, tuple[float, float]]:
    """name -> (the fragment's height, the column's height), in TeX points."""
    from derive.pipeline.pdf import SAFE_FLAGS, tex_environment

    packages = re.search(r"^% Needs (\\usepackage\{[^}]*\})", (LATEX / f"{names[0]}-result.tex").read_text(), re.M)
    body = "".join(rf"\setbox0=\vbox{{\hsize=\columnwidth\linewidth=\columnwidth\input{{{name}-result}}}}"
                   rf"\typeout{{HEIGHT {name} \the\dimexpr\ht0+\dp0\relax\space of \the\textheight}}" "\n"
                   for name in names)
    with tempfile.TemporaryDirectory() as folder:
        for tex in LATEX.glob("*.tex"):
            shutil.copyfile(tex, Path(folder) / tex.name)
        document = (r"\documentclass[10pt,twocolumn]{article}" "\n" + (packages.group(1) if packages else "")
                    + "\n\\begin{document}\n\\input{notation}\n" + body + "\\end{document}\n")
        (Path(folder) / "heights.tex").write_text(document)
        subprocess.run(["pdflatex", *SAFE_FLAGS, "-draftmode", "heights.tex"], cwd=folder, capture_output=True,
                       timeout=600, env=tex_environment(), check=False)
        log = (Path(folder) / "heights.log").read_text(errors="replace")
    found = re.findall(r"^HEIGHT (\S+) ([\d.]+)pt of ([\d.]+)pt", log, re.M)
    return {name: (float(height), float(column)) for name, height, column in found}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="operators (default: every result fragment)")
    args = parser.parse_args(argv)
    names = args.names or sorted(p.name.removesuffix("-result.tex") for p in LATEX.glob("*-result.tex"))
    measured = heights(names)
    if sorted(measured) != sorted(names):
        print(f"not measured: {sorted(set(names) - set(measured))}", file=sys.stderr)
        return 1
    for name in names:
        height, column = measured[name]
        print(f"{name:30} {height:7.0f} pt  {height / column:4.2f} columns (a column: {column:.0f} pt)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
