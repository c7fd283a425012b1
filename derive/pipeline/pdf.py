"""Compile the generated LaTeX documents to PDF with latexmk (or pdflatex run until stable).

Each document is compiled in a private temporary folder made inside the output folder, holding
only what it needs (itself, the files it ``\\input``s, the ``.bib`` it cites); its PDF, log and
BibTeX's ``.bbl`` are then renamed into the output folder (a rename replaces a file or symbolic
link there, never writes through it) and the temporary folder is removed, so nothing lands in
``generated/`` and no link in the output folder redirects a write; an output folder that is a
link is refused.  No compiler on PATH is a ``TexMissingError`` saying what to install; a document
that does not compile is a ``CompileError`` quoting the LaTeX error from the log (kept beside the
PDFs).  TeX runs without shell escape, may not read or write files outside its folder, and latexmk
reads no rc file (a ``latexmkrc`` is Perl it would run).  ``compile_documents`` compiles freshly
rendered files instead (the documents of a user's ``--model`` file, which are not in ``generated/``).
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import CompileError, OutputError, TexMissingError
from ..targets.latex.headers import BIBLIOGRAPHY, bibliography
from .output import refuse_unwritable

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
        raise CompileError(f"{folder} does not exist; run `derive generate` first, or give --source the "
                           "folder `derive generate --out` wrote")
    available = sorted(p.stem for p in folder.glob("*.tex")
                       if not p.stem.endswith("-body") and p.stem != "notation")
    missing = [name for name in names if name not in available]
    if missing:
        close = sorted({match for name in missing for match in difflib.get_close_matches(name, available, n=3)})
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise CompileError(f"no document {', '.join(missing)} in {folder}{hint} Documents there: "
                           f"{', '.join(available)}")
    return names or available


def check_output(out: Path) -> None:
    """``OutputError`` for an output folder derive pdf must not write into: a symbolic link, the root
    or the home folder, or a path that cannot be a folder (``refuse_unwritable``)."""
    if out.is_symlink():
        raise OutputError(f"refusing to write into {out}: it is a symbolic link; give --out a folder of its own")
    refuse_unwritable(out)


def _make_output(out: Path) -> None:
    check_output(out)
    out.mkdir(parents=True, exist_ok=True)


def compile_pdfs(source: Path, out: Path, names: list[str] | None = None,
                 progress: Callable[[str], None] = lambda message: None) -> list[Path]:
    """Compile the named documents of ``<source>/latex`` into ``out``; returns the PDFs written."""
    command = compiler()
    wanted = documents(source, names or [])
    folder = source / "latex"
    _make_output(out)
    return _compile_all(command, {name: needed(name, lambda file: _read(folder, file)) for name in wanted},
                        out, progress)


def compile_documents(files: dict[str, str], names: list[str], out: Path,
                      progress: Callable[[str], None] = lambda message: None) -> list[Path]:
    """Compile the standalone documents ``latex/<name>.tex`` of rendered ``files`` into ``out``."""
    command = compiler()
    texts = {path[len("latex/"):]: text.encode("utf-8") for path, text in files.items()
             if path.startswith("latex/") and path.endswith((".tex", ".bib")) and path.count("/") == 1}
    texts.setdefault(f"{BIBLIOGRAPHY}.bib", bibliography().encode("utf-8"))  # the sources the documents cite
    _make_output(out)
    return _compile_all(command, {name: needed(name, texts.get) for name in names}, out, progress)


INPUT = re.compile(r"\\(?:input|include)\{([^}]*)\}")
BIBLIOGRAPHY_FILES = re.compile(r"\\bibliography\{([^}]*)\}")
COMMENT = re.compile(r"(?<!\\)%.*")


def needed(name: str, read: Callable[[str], bytes | None]) -> dict[str, bytes]:
    """File name -> content of what document ``name`` needs: ``<name>.tex``, every file it (and they)
    ``\\input`` or ``\\include``, and the ``.bib`` files of its ``\\bibliography``, those ``read`` has
    (None: not there; TeX looks in its own tree and says if it is missing)."""
    found: dict[str, bytes] = {}
    pending = [f"{name}.tex"]
    while pending:
        file = pending.pop(0)
        content = None if file in found else read(file)
        if content is None:
            continue
        found[file] = content
        if file.endswith(".tex"):
            pending += references(content.decode("utf-8", "replace"))
    return found


def references(text: str) -> list[str]:
    """The plain file names a LaTeX text inputs or cites, outside comments."""
    live = COMMENT.sub("", text)
    inputs = [name.strip() for name in INPUT.findall(live)]
    files = [name if name.endswith(".tex") else f"{name}.tex" for name in inputs]
    files += [f"{name.strip()}.bib" for names in BIBLIOGRAPHY_FILES.findall(live) for name in names.split(",")]
    return [file for file in files if PLAIN.fullmatch(file)]


PLAIN = re.compile(r"[\w-][\w.-]*")
"""A file name in the documents' folder: no folder part, not hidden."""


def _read(folder: Path, file: str) -> bytes | None:
    path = folder / file
    return path.read_bytes() if PLAIN.fullmatch(file) and path.is_file() else None


PRODUCTS = (".pdf", ".log", ".bbl")
"""What a compile leaves in the output folder: the PDF, TeX's log and BibTeX's bibliography."""
WORK_FOLDER = ".derive-pdf-"
"""The start of a compile's temporary folder's name (inside the output folder, removed after)."""


def _compile_all(command: list[str], inputs: dict[str, dict[str, bytes]], out: Path,
                 progress: Callable[[str], None]) -> list[Path]:
    """Compile each document from its files (``needed``) into ``out``; returns the PDFs."""
    pdfs = []
    for name, files in inputs.items():
        _compile(command, name, files, out)
        pdfs.append(out / f"{name}.pdf")
        progress(f"{out / (name + '.pdf')}")
    return pdfs


def _compile(command: list[str], name: str, files: dict[str, bytes], out: Path) -> None:
    """Compile ``name`` in a private temporary folder inside ``out`` holding ``files``, then rename
    its products into ``out`` (only its log when it failed: the previous PDF stays)."""
    work = Path(tempfile.mkdtemp(prefix=f"{WORK_FOLDER}{name}-", dir=out))  # mode 0700, this user's
    try:
        for file, content in files.items():
            with open(work / file, "xb") as stream:
                stream.write(content)
        try:
            _run(command, name, work)
        except CompileError:
            _move(work, out, [f"{name}.log"])
            raise
        _move(work, out, [name + suffix for suffix in PRODUCTS])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _move(work: Path, out: Path, files: list[str]) -> None:
    """Rename each of ``files`` that ``work`` holds into ``out``, replacing what is there."""
    for file in files:
        if (work / file).is_file():
            try:
                os.replace(work / file, out / file)
            except OSError as error:
                raise OutputError(f"cannot write {out / file}: {error.strerror}") from None


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
