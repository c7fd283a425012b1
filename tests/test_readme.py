"""The README's Python example runs as written, from the repository root."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT


def python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_kernel_example_runs():
    blocks = [b for b in python_blocks() if "from generated" in b]
    assert blocks, "the README shows how to call a generated kernel"
    for block in blocks:
        result = subprocess.run([sys.executable, "-c", block + "\nassert dbeta is None and dx.dtype == x.dtype\n"],
                                cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1).strip().splitlines()
    assert first_block[0] == "pip install -e . && derive generate"
    assert first_block[1] == 'pip install -e ".[test]" && python -m pytest'
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert first_block[1] in ci.splitlines()


def test_readme_operator_table_is_current():
    from derive.catalog import markdown_table

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = re.search(r"<!-- operators:begin -->\n(.*?)<!-- operators:end -->", text, flags=re.S).group(1)
    assert table == markdown_table(), "regenerate the table with `derive list --markdown`"
