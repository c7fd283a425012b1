"""Compile the generated LaTeX documents to PDF with latexmk (or pdflatex run until stable).

The documents are copied from ``<source>/latex/`` into the output folder and compiled there, so
auxiliary files never land in ``generated/``.  No compiler on PATH is a ``TexMissingError`` whose
message says what to install; a document that does not compile is a ``CompileError`` quoting
the LaTeX error from the log.  TeX runs without shell escape, may not read or write files outside
the document's folder, and latexmk reads no rc file (a ``latexmkrc`` is Perl it would run).
``compile_documents`` compiles freshly rendered files instead (the documents of a user's
``--model`` file, which are not in ``generated/``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from ..errors import CompileError, TexMissingError
from ..targets.latex.headers import BIBLIOGRAPHY, bibliography
from .output import refuse_system_folder

HANDBOOK = "handbook"
INSTALL_HINT = """derive pdf needs latexmk or pdflatex on PATH. Install TeX Live, for example:
  Debian/Ubuntu: sudo apt-get install --no-install-recommends texlive-latex-base texlive-latex-recommended latexmk
  Fedora:        sudo dnf install texlive-scheme-basic texlive-mathtools latexmk
  macOS:         brew install --cask basictex   (then: sudo tlmgr install latexmk mathtools)
  Windows/other: MiKTeX (https://miktex.org) or TeX Live (https://tug.org/texlive/)"""


SAFE_FLAGS = ("-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error")
"""No \\write18 shell commands, whatever the distribution's default.  latexmk also gets ``-norc``: no
``latexmkrc``/``.latexmkrc`` of the output or working folder (or any other) is run."""
SAFE_KPATHSEA = {"openin_any": "p", "openout_any": "p"}
"""kpathsea's paranoid mode: TeX reads and writes no file outside the document's folder by an
absolute or ``..`` path (``\\input{/etc/passwd}`` is refused), nor any dot file."""


def compiler() -> list[str]:
    """The command that compiles one document in the current folder (document name appended)."""
    if shutil.which("latexmk"):
        return ["latexmk", "-norc", "-pdf", *SAFE_FLAGS]
    if shutil.which("pdflatex"):
        return ["pdflatex", *SAFE_FLAGS]
    raise TexMissingError(INSTALL_HINT)


def tex_environment() -> dict[str, str]:
    """The environment TeX runs in: this process's, with ``SAFE_KPATHSEA`` over it and without
    ``TEXMFOUTPUT`` (paranoid mode lets TeX write and read anywhere under that folder)."""
    env = {name: value for name, value in os.environ.items() if name != "TEXMFOUTPUT"}
    return {**env, **SAFE_KPATHSEA}


def documents(source: Path, names: list[str]) -> list[str]:
    """The document names to compile: the operators named (and ``handbook``), or all of them."""
    folder = source / "latex"
    if not folder.is_dir():
        raise CompileError(f"{folder} does not exist; run `derive generate` first")
    available = sorted(p.stem for p in folder.glob("*.tex")
                       if not p.stem.endswith("-body") and p.stem != "notation")
    wanted = names or available
    missing = [name for name in wanted if name not in available]
    if missing:
        raise CompileError(f"no generated document for {', '.join(missing)} in {folder}; "
                           f"available: {', '.join(available)} (run `derive generate` first)")
    return wanted


def compile_pdfs(source: Path, out: Path, names: list[str] | None = None,
                 progress: Callable[[str], None] = lambda message: None) -> list[Path]:
    """Compile the named documents of ``<source>/latex`` into ``out``; returns the PDFs written."""
    command = compiler()
    wanted = documents(source, names or [])
    refuse_system_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    for tex in [*(source / "latex").glob("*.tex"), *(source / "latex").glob("*.bib")]:
        shutil.copyfile(tex, out / tex.name)
    return _compile_all(command, wanted, out, progress)


def compile_documents(files: dict[str, str], names: list[str], out: Path,
                      progress: Callable[[str], None] = lambda message: None) -> list[Path]:
    """Compile the standalone documents ``latex/<name>.tex`` of rendered ``files`` into ``out``."""
    command = compiler()
    texts = {path[len("latex/"):]: text for path, text in files.items()
             if path.startswith("latex/") and path.endswith((".tex", ".bib")) and path.count("/") == 1}
    texts.setdefault(f"{BIBLIOGRAPHY}.bib", bibliography())  # the sources the documents cite
    refuse_system_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (out / name).write_text(text, encoding="utf-8")
    return _compile_all(command, names, out, progress)


def _compile_all(command: list[str], names: list[str], out: Path, progress: Callable[[str], None]) -> list[Path]:
    pdfs = []
    for name in names:
        _run(command, name, out)
        pdfs.append(out / f"{name}.pdf")
        progress(f"{out / (name + '.pdf')}")
    return pdfs


def _run(command: list[str], name: str, folder: Path) -> None:
    """latexmk (which runs BibTeX itself), or pdflatex, BibTeX where the document has a bibliography
    and BibTeX is installed, then pdflatex twice more (contents, references, then stable)."""
    runs = 1 if command[0] == "latexmk" else 3
    for run in range(runs):
        result = subprocess.run([*command, f"{name}.tex"], cwd=folder, capture_output=True, text=True,
                                errors="replace", timeout=600, env=tex_environment())
        if result.returncode != 0:
            raise CompileError(f"{name}.tex did not compile:\n{latex_errors(folder / f'{name}.log', result.stdout)}")
        aux = folder / f"{name}.aux"
        cites = aux.exists() and "\\bibdata" in aux.read_text(errors="replace")
        if run == 0 and runs > 1 and cites and shutil.which("bibtex"):
            subprocess.run(["bibtex", name], cwd=folder, capture_output=True, text=True, errors="replace",
                           timeout=600, env=tex_environment())


def latex_errors(log: Path, fallback: str) -> str:
    """The error lines of a LaTeX log ('! ...' or 'file:line: ...' and the two lines after)."""
    text = log.read_text(errors="replace") if log.exists() else fallback
    lines = text.splitlines()
    found = []
    for position, line in enumerate(lines):
        if line.startswith("!") or re.match(r"^[^ :]+\.tex:\d+: ", line):
            found.extend(lines[position:position + 3])
    return "\n".join(found[:30]) or "\n".join(lines[-20:])


def overfull_boxes(log: Path) -> list[str]:
    """The 'Overfull \\hbox' warnings of a compiled document's log (text running off the page)."""
    return [line for line in log.read_text(errors="replace").splitlines() if line.startswith("Overfull \\hbox")]
