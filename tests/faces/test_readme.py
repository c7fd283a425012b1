"""The README's first commands, its kernel example and its operator table are true, and so are the
snippets, paths and links of the README and of ``docs/*.md``: python blocks run, shell blocks name
commands, options, extras and files that exist, links resolve."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import GENERATED, ROOT
from helpers.readme import README, fenced, python_blocks

DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
CPU_TORCH = "pip install torch --index-url https://download.pytorch.org/whl/cpu"


def test_readme_kernel_example_runs_from_any_folder(tmp_path):
    """As the README's first step leaves it (``pip install -e .``; CI does so): from a folder
    outside the checkout, ``derive.generated`` is this checkout's ``generated/``.  A wheel install
    is covered by tests/pipeline/test_install.py."""
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
    text = README.read_text(encoding="utf-8")
    first_block = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1).strip().splitlines()
    assert first_block[0] == "pip install -e . && derive generate"
    assert first_block[1] == 'pip install -e ".[test]" && python -m pytest'
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert first_block[1] in ci.splitlines()


def test_readme_operator_table_is_current():
    from derive.model.catalog import markdown_table

    text = README.read_text(encoding="utf-8")
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



# the install note, the docs beside the README, and what they name ---------------------------------
def test_cpu_torch_install_comes_before_the_test_command():
    """Without a GPU the CPU build of torch must be installed before the test extra (else pip picks
    a CUDA build): the README gives the command before its first commands, as .ci/run does it."""
    text = README.read_text(encoding="utf-8")
    before = text[:text.index("```bash\n")]
    assert CPU_TORCH in before, "the CPU-torch install, with its command, before the commands that need it"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    torch_line = next(n for n, line in enumerate(ci) if re.match(r'pip install "torch==[\d.]+"$', line))
    test_line = ci.index('pip install -e ".[test]" && python -m pytest')
    assert torch_line < test_line
    version = re.search(r"torch==([\d.]+)", ci[torch_line]).group(1)
    intro = text[:text.index("\n## ")]
    assert f"torch {version}" in intro and "`.ci/run`" in intro, "the README says what CI installs first"


def test_readme_links_the_docs():
    text = README.read_text(encoding="utf-8")
    for name in ("architecture", "benchmarks", "testing"):
        assert (ROOT / "docs" / f"{name}.md").is_file()
        assert f"](docs/{name}.md)" in text, f"the README links docs/{name}.md"


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of ``page``'s headings (lower case, punctuation dropped, spaces as hyphens)."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in re.findall(r"^#+ (.*)$", text, flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_links_resolve(page):
    """Every relative link and image of the page names a file that exists, and a heading of it."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (anchor and anchor not in anchors(linked)):
            broken.append(target)
    assert not broken, f"{page.name}: links to nothing: {broken}"


REPOSITORY_PATH = re.compile(r"(?:derive|tests|templates|generated|docs|tools|notebooks|\.ci)/[\w./-]*")


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_named_paths_exist(page):
    """Every path of the repository the page names in backticks exists (patterns such as
    ``generated/numpy/<op>.py`` and the example target ``derive/targets/foo/`` aside)."""
    text = page.read_text(encoding="utf-8")
    named = {token for token in re.findall(r"`([^`\n]+)`", text) if REPOSITORY_PATH.fullmatch(token)}
    missing = sorted(p for p in named if "/foo" not in p and not (ROOT / p).exists())
    assert not missing, f"{page.name} names paths that do not exist: {missing}"


def architecture_tree() -> dict[str, int]:
    """The paths of docs/architecture.md's folder tree (indented two spaces a level) -> line number."""
    (block,) = [b for b in fenced(ROOT / "docs" / "architecture.md", "") if b.startswith("derive/")]
    paths, parents = {}, []
    for number, line in enumerate(block.splitlines()):
        depth = (len(line) - len(line.lstrip(" "))) // 2
        name = line.split()[0]
        parents[depth:] = [name]
        paths["".join(parents)] = number
    return paths


def test_architecture_tree_names_every_package():
    """One line per package and top-level module of derive/, and nothing that does not exist."""
    tree = architecture_tree()
    packages = {f"{p.parent.relative_to(ROOT).as_posix()}/" for p in (ROOT / "derive").rglob("__init__.py")}
    modules = {f"derive/{p.name}" for p in (ROOT / "derive").glob("*.py") if p.name != "__init__.py"}
    assert not (packages | modules) - set(tree), f"missing from the tree: {sorted((packages | modules) - set(tree))}"
    assert not [p for p in tree if not (ROOT / p).exists()], "the tree names paths that do not exist"


def extras() -> set[str]:
    """The extras pyproject.toml declares (``[project.optional-dependencies]``)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = text[text.index("[project.optional-dependencies]"):]
    section = section[:section.index("\n[", 1)]
    return set(re.findall(r"^([\w-]+) = \[", section, flags=re.M))


def shell_commands(page: Path) -> list[list[str]]:
    """The commands of the page's bash blocks, as words (continued lines joined, comments dropped,
    a leading ``time``, ``NAME=value`` or ``env -u NAME`` left out)."""
    commands = []
    for block in fenced(page, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words and (words[0] == "time" or re.fullmatch(r"[A-Z_]+=\S*", words[0])):
                words = words[1:]
            if words[:1] == ["env"]:
                words = words[1:]
                while words[:1] == ["-u"]:
                    words = words[2:]
            if words:
                commands.append(words)
    return commands


def derive_accepts(args: list[str]) -> str:
    """'' if ``derive`` parses ``args``, else argparse's message."""
    from derive.cli import build_parser

    errors = io.StringIO()
    with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
        try:
            build_parser().parse_args(args)
        except SystemExit as stop:
            return errors.getvalue() or f"exit {stop.code}"
    return ""


def shell_problems(command: list[str], cwd: Path) -> list[str]:
    """What is wrong with one command of a bash block: an extra pyproject.toml does not declare, a
    ``derive`` option or command the parser refuses, a module or script that is missing, or a
    ``python -c`` snippet that fails."""
    line = " ".join(command)
    if command[:2] == ["pip", "install"]:
        wanted = {e for word in command if (m := re.fullmatch(r"\.\[([\w,-]+)\]", word)) for e in m[1].split(",")}
        return [f"{line}: no extra {e!r} in pyproject.toml" for e in sorted(wanted - extras())]
    if command[0] == "derive":
        refused = derive_accepts(command[1:])
        return [f"{line}: {refused}"] if refused else []
    if command[0] == "python" and command[1] == "-m":
        return [] if importlib.util.find_spec(command[2]) else [f"{line}: no module {command[2]}"]
    if command[0] == "python" and command[1] == "-c":
        done = subprocess.run([sys.executable, "-c", importable_generated() + command[2]], cwd=cwd, text=True,
                              capture_output=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        return [] if done.returncode == 0 else [f"{line}: {done.stderr[-2000:]}"]
    if command[0] == "python":
        return [] if (ROOT / command[1]).is_file() else [f"{line}: no file {command[1]}"]
    return []  # another program's command (jupyter)


@pytest.mark.parametrize("page", [page for page in PAGES if fenced(page, "bash")], ids=lambda page: page.name)
def test_shell_blocks_name_what_exists(page, tmp_path):
    """The bash blocks' commands are ones that work here: the README's walkthrough and claims run
    in tests/model/test_user_models.py; every other ``derive`` line is parsed, not run (benchmarks take
    minutes)."""
    problems = [problem for command in shell_commands(page) for problem in shell_problems(command, tmp_path)]
    assert not problems, "\n".join(problems)


def test_shell_check_refuses_what_does_not_exist(tmp_path):
    """The check above can fail: a misspelled option, an extra or a module that does not exist."""
    assert shell_problems(["derive", "show", "layernorm", "--ordr", "2"], tmp_path)
    assert shell_problems(["pip", "install", "-e", ".[numbaa]"], tmp_path)
    assert shell_problems(["python", "-m", "derive.bench.plott"], tmp_path)
    assert not shell_problems(["derive", "show", "layernorm", "--order", "2"], tmp_path)


def test_docs_python_blocks_run(tmp_path):
    """Every python block of docs/*.md runs as written, in a fresh interpreter."""
    blocks = [(page.name, block) for page in DOCS for block in fenced(page, "python")]
    assert blocks, "docs/ shows derive from Python"
    for name, block in blocks:
        done = subprocess.run([sys.executable, "-c", importable_generated() + block], cwd=tmp_path, text=True,
                              capture_output=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert done.returncode == 0, f"{name}:\n{block}\n{done.stderr[-3000:]}"
