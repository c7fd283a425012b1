"""The Python interface (for notebooks and scripts); the ``derive`` command line is a thin layer over it.

    model = load("rmsnorm")                  # a built-in or installed operator, or load("my_op.py")
    model = trace(my_rmsnorm, {"x": ("n",)}) # or traced from a NumPy / Array API function
    d = derive(model)                        # Jacobian entry, VJP and JVP for every input
    jacobian(d, "x"); vjp(d, "x", readable=True); latex(vjp(d, "x"))   # LaTeX as in the documents
    files = render(d)                        # {"numpy/rmsnorm.py": text, ...}, every target
    write(model, "out/"); kernel = load_kernel("out/numpy/rmsnorm.py")   # changes(model, "out/"): diffs
    kernel("rmsnorm")                        # the array_api kernel as a module (built-in or model file)
    claim(model, "x", "gamma[k]*dy[k]/r - ...")  # a Verdict: equal or not, with a counterexample
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import sympy as sp

from .calculus.pipeline import Derivation, InputGradient
from .calculus.pipeline import derive as _derive
from .display.forms import equation_latex
from .display.forms import readable as _readable
from .model import OperatorModel, registry
from .model.files import load_model, load_models
from .model.trace import trace as _trace
from .pipeline.cache import RenderCache, default_folder, engine_fingerprint, model_key, private_folder
from .pipeline.generate import Options, Progress
from .pipeline.generate import check as _check
from .pipeline.generate import generate as _generate
from .pipeline.output import MANIFEST
from .pipeline.render import render_model
from .proof.claims import SIZES, Verdict
from .proof.claims import check as _check_claim
from .targets import render as _render


def load(name_or_path: str | Path, operator: str | None = None) -> OperatorModel:
    """A built-in or installed operator by name, or the operator of a model file (``*.py``).

    A file that registers several operators needs ``operator`` to say which.
    """
    if isinstance(name_or_path, Path) or str(name_or_path).endswith(".py"):
        return load_model(name_or_path, operator)
    return registry.get(str(name_or_path))


def load_file(path: str | Path) -> dict[str, OperatorModel]:
    """Every operator a model file registers, by name (none of them joins the built-in registry)."""
    return load_models(path)


def trace(fn: Callable[..., Any], shapes: Mapping[str, Sequence[str]], name: str | None = None) -> OperatorModel:
    """The model of a Python function written with NumPy or the Array API: ``shapes`` gives each array
    argument's core axes by name (``{"x": ("n",), "gamma": ("n",)}``; ``()`` a scalar), keyword
    parameters with number defaults become parameters, batch dimensions stay implicit.  An operation
    it cannot trace is a ``ModelError`` naming the function, the line and the operation."""
    return _trace(fn, shapes, name=name, origin=_traced_origin(fn, shapes))


def _traced_origin(fn: Callable[..., Any], shapes: Mapping[str, Sequence[str]]) -> str:
    """A traced function's ``origin``: its file and the digest of the file, the function and the shapes
    (so its kernels are cached like a model file's); empty for a function with no file."""
    try:
        path = Path(inspect.getsourcefile(fn) or "")
        text = path.read_bytes()
    except (TypeError, OSError):
        return ""
    digest = hashlib.sha256(text + f"\0traced {fn.__qualname__} {sorted(shapes.items())!r}".encode())
    return registry.file_origin(path, digest.hexdigest())


def operators() -> tuple[str, ...]:
    """The names of the built-in and installed operators."""
    return (*registry.names(), *(plugin.name for plugin in registry.plugins()))


def derive(model: OperatorModel | str) -> Derivation:
    """Validate and differentiate ``model`` by every differentiable input."""
    return _derive(load(model) if isinstance(model, str) else model)


def _gradient(derivation: Derivation | OperatorModel | str, wrt: str) -> tuple[InputGradient, OperatorModel]:
    if not isinstance(derivation, Derivation):
        derivation = derive(derivation)
    return derivation.gradient(wrt), derivation.model


def jacobian(derivation: Derivation | OperatorModel | str, wrt: str, readable: bool = False) -> sp.Expr:
    """The Jacobian entry d y[i...] / d wrt[k...] (``readable``: named intermediates written in)."""
    gradient, model = _gradient(derivation, wrt)
    return _readable(gradient.jacobian, model) if readable else gradient.jacobian


def vjp(derivation: Derivation | OperatorModel | str, wrt: str, readable: bool = False) -> sp.Expr:
    """The gradient entry d wrt[k...] for the cotangent ``dy``."""
    gradient, model = _gradient(derivation, wrt)
    return _readable(gradient.vjp, model) if readable else gradient.vjp


def jvp(derivation: Derivation | OperatorModel | str, wrt: str, readable: bool = False) -> sp.Expr:
    """The output tangent entry contributed by the tangent ``dot_<wrt>``."""
    gradient, model = _gradient(derivation, wrt)
    return _readable(gradient.jvp, model) if readable else gradient.jvp


def vjp_jvp(derivation: Derivation | OperatorModel | str, wrt: str, readable: bool = False) -> sp.Expr:
    """The second order: the derivative of the gradient entry d wrt[k...] along every input's
    tangent ``dot_<input>``, the cotangent ``dy`` held fixed (a Hessian-vector product)."""
    if not isinstance(derivation, Derivation):
        derivation = derive(derivation)
    expr = derivation.vjp_jvp(wrt)
    return _readable(expr, derivation.model) if readable else expr


def latex(expr: sp.Expr, output: str = "y", *, lhs: str | sp.Expr | None = None, width: float | None = None,
          note: str = "") -> str:
    """``expr`` in the notation of the derivation documents: x_{k}, \\bar{y} for the cotangent,
    \\dot{x} for a tangent, \\epsilon, \\sigma for the logistic function, constant positions counted
    from 1 (``output`` names the operator's output).  ``lhs``: the equation ``lhs = expr``;
    ``width``: wider than that many letters (``derive.display.DISPLAY_WIDTH`` fits a notebook), an
    ``aligned`` block broken at top-level + and -; ``note``: text after it."""
    return equation_latex(lhs, expr, output, width, note)


def targets() -> tuple[str, ...]:
    """The output targets ``render`` writes (``numpy``, and any other in ``derive.targets.TARGETS``)."""
    return tuple(target.name for target in _render.TARGETS)


def render(model: Derivation | OperatorModel | str, targets: Sequence[str] | None = None) -> dict[str, str]:
    """Relative path -> text of the generated files, for every target or the named ones; each file
    is proved against the oracle first (a ``ProofError`` if it disagrees).  Every target's files go
    through the render cache ``write`` uses (an unchanged built-in or model file is rendered once:
    ``render`` then ``write`` derives it once)."""
    if not isinstance(model, (Derivation, OperatorModel)):
        model = load(model)
    if targets is None:
        return render_model(model, cache=RenderCache())
    return render_model(model, tuple(_target(name) for name in targets))


def _target(name: str) -> _render.Target:
    for target in _render.TARGETS:
        if target.name == name:
            return target
    raise KeyError(f"unknown target {name!r}; known: {', '.join(t.name for t in _render.TARGETS)}")


def write(models: OperatorModel | str | Sequence[OperatorModel | str] | None, out: str | Path,
          progress: Progress = lambda message: None, options: Options | None = None) -> list[str]:
    """Write the operators' files into ``out`` (each atomically, under a lock on ``out``); returns the
    relative paths of the operators' files that changed (or were removed).  ``out/.derive-manifest``
    records the files derive wrote there; it is bookkeeping, not listed.

    ``models=None`` writes every built-in operator and removes the files derive wrote into ``out``
    before that no operator writes any more; files of anyone else are never touched.
    ``options``: a render cache and how many processes may derive (default: the render cache
    ``derive generate`` uses, ``$DERIVE_CACHE_DIR`` else ``~/.cache/derive``, and one process;
    ``Options()`` derives everything again).
    """
    changed = _generate(Path(out), models=_models(models), progress=progress, options=_options(options))
    return [path for path in changed if path != MANIFEST]


def changes(models: OperatorModel | str | Sequence[OperatorModel | str] | None, out: str | Path,
            progress: Progress = lambda message: None, options: Options | None = None) -> list[str]:
    """Unified diffs of what ``write(models, out)`` would change (empty when ``out`` is current);
    ``options`` as for ``write``."""
    return _check(Path(out), models=_models(models), progress=progress, options=_options(options))


def _options(options: Options | None) -> Options:
    return Options(cache=RenderCache()) if options is None else options


def _models(models) -> list[OperatorModel] | None:
    if models is None:
        return None
    if isinstance(models, (OperatorModel, str, Path)):
        models = [models]
    return [m if isinstance(m, OperatorModel) else load(m) for m in models]


def load_kernel(path: str | Path) -> ModuleType:
    """Import a generated kernel file as a module (``forward``, ``vjp``, ``jvp``, ``INPUTS`` ...).

    The file's bytes are read once and compiled (never a cached bytecode file, which a rewrite in
    the same second at the same size would leave stale); the module is named after the file's real
    path and the digest of those bytes, so two kernels that differ are two modules."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError:
        raise FileNotFoundError(f"no kernel file at {path}") from None
    identity = hashlib.sha256(str(path.resolve()).encode() + b"\0" + text).hexdigest()[:16]
    spec = importlib.util.spec_from_file_location(f"derive_kernel_{path.stem}_{identity}", path)
    assert spec is not None  # a file location always gives a spec
    module = importlib.util.module_from_spec(spec)
    exec(compile(text, str(path), "exec", dont_inherit=True), module.__dict__)  # a generated kernel
    return module


def kernel(name_or_path: str | Path | OperatorModel, target: str = "array_api",
           operator: str | None = None) -> ModuleType:
    """The ``target`` kernel of an operator as a module: a built-in's shipped file
    (``derive.generated``, or this checkout's ``generated/``), else written and proved into the
    render cache's folder (a model file's operator: seconds the first time, then from the cache).
    The module is in ``sys.modules`` under its ``__name__``, so ``torch.compile`` can trace into it."""
    model = name_or_path if isinstance(name_or_path, OperatorModel) else load(name_or_path, operator)
    folder = _target(target).folder
    shipped = generated_folder() / folder / f"{model.name}.py"
    if not (registry.is_builtin(model) and shipped.is_file()):
        shipped = _rendered(model, folder)
    module = load_kernel(shipped)
    sys.modules[module.__name__] = module
    return module


def _rendered(model: OperatorModel, folder: str) -> Path:
    """A model file's (or an installed package's) operator written, proved, into the render cache's
    folder (``$DERIVE_CACHE_DIR/kernels/<key>/``, ``_kernel_key``): rendered once, served from the
    cache after that, also to another process.  A cache folder another user could write is not
    used: the kernels go to a private temporary folder instead."""
    root = private_folder(default_folder())
    kernels = private_folder(root / "kernels") if root is not None else None
    if kernels is None:
        kernels = _private_temporary()
    out = private_folder(kernels / _kernel_key(model)) or _private_temporary()
    write(model, out)  # through the render cache
    return out / folder / f"{model.name}.py"


def _kernel_key(model: OperatorModel) -> str:
    """What a model's kernel folder is named by: its render-cache key (the engine, the model file's
    real path and text) or, for a model with none (built in code, an installed package's), the
    engine and the model's own expressions; two operators that differ never share a folder."""
    key = model_key(model)
    if key is None:
        key = hashlib.sha256(f"{engine_fingerprint()}\0{model.origin}\0{sp.srepr(model.output)}\0"
                             f"{model!r}".encode()).hexdigest()
    return key[:24]


@functools.cache
def _private_temporary() -> Path:
    """A folder of this process's own (mode 0700), for kernels when the cache folder cannot be trusted."""
    return Path(tempfile.mkdtemp(prefix="derive-kernels-"))


def generated_folder() -> Path:
    """The built-in operators' files (kernels, documents): the installed ``derive.generated``, else
    this checkout's ``generated/``; wherever derive runs from (``derive pdf``, ``derive bench``)."""
    checkout = Path(__file__).resolve().parents[1] / "generated"
    spec = importlib.util.find_spec("derive.generated")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return checkout


def claim(model: OperatorModel | str, wrt: str, formula: str, kind: str = "vjp", *,
          fixed: dict[str, str] | None = None, let: dict[str, str] | None = None, diagonal: bool = False,
          sizes: tuple[int, ...] = SIZES) -> Verdict:
    """Is ``formula`` the derived ``kind`` (``"vjp"``, ``"jacobian"``, ``"jvp"``) entry for ``wrt``?

    ``fixed`` sets inputs or parameters (``{"epsilon": "0", "approximate": "tanh"}``); ``let`` names
    intermediates the formula uses (``{"rstd": "1/sqrt(mean(x[j]**2, j) + eps)"}``)."""
    return _check_claim(load(model) if isinstance(model, str) else model, wrt, formula, kind,
                        fixed=fixed, let=let, diagonal=diagonal, sizes=sizes)
