"""The package's layers: each module imports only its own layer and those below it, and no two
modules import each other, directly or round a circle (lazily inside a function counts too).

Read from the source (``ast``), not by importing: the rule is about the code as written.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from helpers import ROOT

PACKAGE = ROOT / "derive"
LAYERS = (
    ("errors", "version", "budget"),
    ("model",),
    ("ops",),
    ("calculus",),
    ("schedule",),
    ("display",),
    ("proof",),
    ("targets",),
    ("pipeline",),
    ("api", "show", "commands", "cli", "torch", "jax", "adapters", "bench", "__init__"),
)
"""Bottom to top: the support every layer may use, the model, the built-in operators, the
differentiator, the schedule every target reads, the displayed maths, the proof, the targets, the
one path to files, and the faces."""


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    return next(number for number, names in enumerate(LAYERS) if top in names)


def imports(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that ``module`` imports, wherever in the file."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            source = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                found.add(f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name in known and name != module}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {module: imports(module, path, known) for module, path in known.items()}


def test_every_module_has_a_layer():
    unplaced = [m for m in modules() if not any((m.split(".") + ["__init__"])[1] in names for names in LAYERS)]
    assert not unplaced, f"modules in no layer of LAYERS: {unplaced}"


def test_no_module_imports_a_layer_above_its_own():
    upward = sorted(f"{m} -> {d}" for m, deps in graph().items() if m != "derive"
                    for d in deps if layer(d) > layer(m))
    assert not upward, "a lower layer imports a higher one:\n" + "\n".join(upward)


def test_no_import_circle():
    edges = graph()
    state: dict[str, int] = {}
    circles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(edges[module]):
            if state.get(dep) == 1:
                circles.append(" -> ".join(path[path.index(dep):] + [module, dep]) if dep in path else f"{module} -> {dep}")
            elif dep not in state:
                visit(dep, path + [module])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])
    assert not circles, "import circles:\n" + "\n".join(circles)


KERNEL_CORE = "derive.targets.kernel"


def target_package(module: str) -> str | None:
    """``derive.targets.<name>`` for a module of a target's folder (the kernel core's too), else None."""
    parts = module.split(".")
    if len(parts) >= 3 and parts[1] == "targets" and (PACKAGE / "targets" / parts[2]).is_dir():
        return ".".join(parts[:3])
    return None


def test_no_target_imports_another_target():
    """A target's folder reads its own files, the kernel core (what the Python kernels share, which
    no target owns) and the layers below; the core reads no target."""
    crossing = sorted(f"{m} -> {d}" for m, deps in graph().items() if target_package(m)
                      for d in deps if target_package(d) not in (None, target_package(m), KERNEL_CORE))
    assert not crossing, "a target imports another target:\n" + "\n".join(crossing)


def test_no_target_template_includes_another_targets():
    """As in the package: a target's templates include their own and the kernel core's
    (``templates/kernel/``), never another target's."""
    crossing = []
    for path in sorted((ROOT / "templates").rglob("*.jinja")):
        folder = path.relative_to(ROOT / "templates").parts[0]
        for name in re.findall(r'{%-?\s*(?:include|import|from)\s+"([^"]+)"', path.read_text(encoding="utf-8")):
            if name.split("/")[0] not in (folder, "kernel"):
                crossing.append(f"templates/{folder}/{path.name} -> {name}")
    assert not crossing, "a target's template includes another target's:\n" + "\n".join(crossing)


def test_the_checks_see_a_planted_upward_import(tmp_path):
    """The test reads what it claims to: a model module importing the pipeline is found."""
    planted = {"derive.model.operator": PACKAGE / "model" / "operator.py"}
    text = planted["derive.model.operator"].read_text(encoding="utf-8") + "\nfrom ..pipeline import cache\n"
    fake = tmp_path / "operator.py"
    fake.write_text(text, encoding="utf-8")
    found = imports("derive.model.operator", fake, modules())
    assert "derive.pipeline.cache" in found and layer("derive.pipeline.cache") > layer("derive.model.operator")
