"""The README's code blocks (and those of any page, such as docs/*.md), for the tests that run what
they show: every ``python`` block of the README, the blocks of one language, one section."""

from __future__ import annotations

from pathlib import Path

from helpers import ROOT

README = ROOT / "README.md"


def fenced(page: Path | str, language: str) -> list[str]:
    """The bodies of the fenced blocks tagged ``language`` (``""``: untagged) of a page (or a text)."""
    text = page.read_text(encoding="utf-8") if isinstance(page, Path) else page
    found, body, tag = [], None, ""
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            if body is None:
                body, tag = [], line[3:].strip()
            else:
                if tag == language:
                    found.append("".join(body))
                body = None
        elif body is not None:
            body.append(line)
    return found


def python_blocks() -> list[str]:
    return fenced(README, "python")


def readme_section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]
