"""The README's first commands, its kernel example and its operator table are true."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import GENERATED, ROOT


def python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_kernel_example_runs_from_any_folder(tmp_path):
    """As the README's first step leaves it (``pip install -e .``; CI does so): from a folder
    outside the checkout, ``derive.generated`` is this checkout's ``generated/``.  A wheel install
    is covered by tests/test_install.py."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run([sys.executable, "-c", "import derive"], cwd=tmp_path, env=env, capture_output=True)
    if probe.returncode != 0:
        pytest.skip("derive is not pip-installed here (the README's first step; CI installs it)")
    blocks = [b for b in python_blocks() if "from derive.generated.numpy" in b]
    assert blocks, "the README shows how to call a built-in kernel"
    here = f"assert pathlib.Path(rmsnorm.__file__).resolve().parent == pathlib.Path({str(GENERATED / 'numpy')!r})"
    for block in blocks:
        check = f"\nimport pathlib\nassert dbeta is None and dx.dtype == x.dtype\n{here}\n"
        result = subprocess.run([sys.executable, "-c", block + check], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1).strip().splitlines()
    assert first_block[0] == "pip install -e . && derive generate"
    assert first_block[1] == 'pip install -e ".[test]" && python -m pytest'
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert first_block[1] in ci.splitlines()


def test_readme_operator_table_is_current():
    from derive.model.catalog import markdown_table

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = re.search(r"<!-- operators:begin -->\n(.*?)<!-- operators:end -->", text, flags=re.S).group(1)
    assert table == markdown_table(), "regenerate the table with `derive list --markdown`"


def importable_generated() -> str:
    """Code that makes ``derive.generated`` what ``pip install`` makes it (this checkout's ``generated/``)."""
    return (f"import importlib.util, sys\nimport derive\n"
            f"spec = importlib.util.spec_from_file_location('derive.generated', {str(GENERATED / '__init__.py')!r}, "
            f"submodule_search_locations=[{str(GENERATED)!r}])\n"
            f"sys.modules['derive.generated'] = module = importlib.util.module_from_spec(spec)\n"
            f"spec.loader.exec_module(module)\n")


ARRAY_API_BLOCKS = [b for b in python_blocks() if "from derive.generated.array_api" in b]
DASK_BLOCKS = [b for b in ARRAY_API_BLOCKS if "LocalCluster" in b]


def test_readme_has_array_api_and_dask_examples():
    assert len(ARRAY_API_BLOCKS) >= 2 and DASK_BLOCKS


@pytest.mark.parametrize("block", [b for b in ARRAY_API_BLOCKS if b not in DASK_BLOCKS], ids=lambda b: "example")
def test_readme_array_api_example_runs(block):
    exec(compile(importable_generated() + block, "README.md", "exec"), {"__name__": "readme"})


@pytest.mark.parametrize("block", DASK_BLOCKS, ids=lambda b: "dask")
def test_readme_dask_example_runs_on_a_local_cluster(block):
    """A script of its own: the cluster's worker processes start and stop with it."""
    result = subprocess.run([sys.executable, "-c", importable_generated() + block], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_readme_framework_example_trains(framework):
    """The README's two-layer model with the derived RMSNorm trains (each block asserts that its
    loss falls by half), and its other examples (PyTorch's gradient penalty through the derived
    second order, which asserts it equals torch's) run, as written in a fresh interpreter."""
    blocks = [b for b in python_blocks() if f"import derive.{framework}\n" in b]
    training = [b for b in blocks if "losses" in b]
    assert len(training) == 1, f"the README has one derive.{framework} training example"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for block in blocks:
        result = subprocess.run([sys.executable, "-c", block], cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr
        if block in training:
            assert re.fullmatch(r"loss \d\.\d+ -> \d\.\d+\n", result.stdout), result.stdout

