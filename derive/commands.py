"""What each ``derive`` subcommand runs (``run_list``, ``run_show``, ``run_generate``, ``run_check``,
``run_claim``, ``run_pdf``, ``run_fuzz``) and what they share: the models named on the command
line, the progress lines, the budget the options set, the render options.  ``derive.cli`` builds
the parser that dispatches to them and turns their errors into one ``derive: error:`` line.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from sympy.printing.pretty.pretty import pretty_use_unicode

from . import api
from .budget import SETTINGS, Budget, BudgetSettingError
from .errors import (
    ClaimError,
    DerivationError,
    LoweringError,
    ModelError,
    ModelFileError,
    NotGeneratedError,
    OutputError,
    PluginError,
    RenderError,
    UnknownOperatorError,
)
from .model import OperatorModel, registry
from .model.catalog import markdown_table
from .model.files import load_traced
from .pipeline import model_out
from .pipeline.cache import RenderCache
from .pipeline.generate import Options, render_models
from .pipeline.pdf import check_output, compile_documents, compile_pdfs
from .proof.claims import report
from .show import show_text

DEFAULT_OUT = Path("generated")
DEFAULT_PDF_OUT = Path("build/pdf")



class UsageError(ValueError):
    """Options that do not fit together."""


INPUT_ERRORS = (UsageError, UnknownOperatorError, PluginError, DerivationError, LoweringError,
                RenderError, ModelError, ModelFileError, ClaimError, OutputError, BudgetSettingError, NotGeneratedError)


def budget_of(args: argparse.Namespace) -> Budget:
    """The limits the options give, else the environment's, else the defaults."""
    return Budget.from_environment(**{name: getattr(args, name, None) for name in SETTINGS})


def run_fuzz(args: argparse.Namespace) -> int:
    from .pipeline import fuzz

    report = fuzz.run(args.count, args.seed, progress_printer(args), seconds=args.timeout)
    for source, problem in report.failures:
        sys.stdout.write(f"# ---- failing model ----\n{fuzz.failing_file(source, problem)}\n")
    proved = report.ran - report.refused - report.stopped - len(report.failures)
    print(f"derive: fuzz: {report.ran} models, {proved} proved, {report.refused} refused with an error, "
          f"{report.stopped} deep ones stopped by their budget, {len(report.failures)} failing", file=sys.stderr)
    return 1 if report.failures else 0


def progress_printer(args: argparse.Namespace):
    if getattr(args, "quiet", False):
        return lambda message: None
    return lambda message: print(f"derive: {message}", file=sys.stderr, flush=True)


def traced(args: argparse.Namespace) -> OperatorModel | None:
    """The model of ``--from FILE.py:FUNCTION`` with its ``--shape``s; None without --from."""
    spec = getattr(args, "trace_from", None)
    if spec is None:
        if getattr(args, "shape", None) or getattr(args, "model_out", None):
            raise UsageError(f"--{'shape' if args.shape else 'model-out'} goes with --from FILE.py:FUNCTION")
        return None
    if args.model is not None:
        raise UsageError("give --model FILE or --from FILE.py:FUNCTION, not both")
    file, colon, function = spec.rpartition(":")
    if not colon or not file or not function.isidentifier():
        raise UsageError(f"--from {spec}: write FILE.py:FUNCTION, e.g. --from ops.py:rmsnorm")
    return load_traced(Path(file), function, dict(_shape(text) for text in args.shape))


def _shape(text: str) -> tuple[str, tuple[str, ...]]:
    name, equals, axes = text.partition("=")
    axes = axes.strip()
    if not equals or not name.strip().isidentifier() or not axes:
        raise UsageError(f"--shape {text}: write NAME=AXES, e.g. --shape x=n, --shape x=N,C,S or --shape alpha=()")
    if axes in ("()", "[]"):
        return name.strip(), ()
    return name.strip(), tuple(axis.strip() for axis in axes.strip("()").split(","))


def selected(args: argparse.Namespace, names: list[str]) -> list[OperatorModel] | None:
    """The models named on the command line (from --model FILE or --from if given); None: all built-ins."""
    model = traced(args)
    if model is not None:
        if any(name != model.name for name in names):
            raise registry.unknown(next(n for n in names if n != model.name), [model.name])
        return [model]
    if args.model is None:
        return [registry.get(name) for name in names] if names else None
    models = api.load_file(args.model)
    for name in names:
        if name not in models:
            raise registry.unknown(name, list(models))
    return [models[name] for name in names] if names else list(models.values())


def one_model(args: argparse.Namespace) -> OperatorModel:
    model = traced(args)
    if model is not None:
        return model
    if args.model is not None:
        return api.load(args.model, args.operator)
    if args.operator is None:
        raise UsageError("name an operator (see `derive list`), or give --model FILE")
    return registry.get(args.operator)


def run_list(args: argparse.Namespace) -> int:
    if args.markdown:
        sys.stdout.write(markdown_table())
        return 0
    rows = [(registry.get(name), "") for name in registry.names()]
    for plugin in registry.plugins():
        try:
            rows.append((registry.get(plugin.name), f"  [{plugin.distribution}]"))
        except INPUT_ERRORS as error:
            print(f"derive: warning: {error}", file=sys.stderr)
    if args.model is not None:
        rows += [(model, f"  [{args.model}]") for model in api.load_file(args.model).values()]
    for category in dict.fromkeys(m.category for m, _ in rows):
        print(f"{category}:")
        for model, origin in ((m, o) for m, o in rows if m.category == category):
            inputs = ", ".join(i.name + ("?" if i.optional else "") for i in model.inputs)
            print(f"  {model.name:<29} ({inputs})  {model.summary}{origin}")
    return 0


def _out(args: argparse.Namespace) -> Path:
    if args.out is None and (args.model is not None or args.trace_from is not None):
        option = "--model" if args.model is not None else "--from"
        raise UsageError(f"derive {'generate' if args.run is run_generate else 'check'} {option} needs "
                             "--out DIR: the folder for your operators' files (generated/ holds the built-ins)")
    return args.out if args.out is not None else DEFAULT_OUT


def render_options(args: argparse.Namespace) -> Options:
    return Options(cache=None if args.no_cache else RenderCache(), jobs=args.jobs)


def run_generate(args: argparse.Namespace) -> int:
    out = _out(args)
    models = selected(args, args.operators)
    keep: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if args.model_out is not None and models:
        command = " ".join(["derive generate --from", args.trace_from, *(f"--shape {s}" for s in args.shape)])
        keep = model_out.staged(models[0], args.model_out, out, command)
    with keep:  # the model file is written after the kernels, and only when they are
        changed = api.write(models, out, progress_printer(args), render_options(args))
    verb = "updated" if changed else "unchanged"
    print(f"derive: {out}/ {verb}" + (f" ({len(changed)} files: {', '.join(changed)})" if changed else ""))
    return 0


def run_check(args: argparse.Namespace) -> int:
    out = _out(args)
    diffs = api.changes(selected(args, args.operators), out, progress_printer(args), render_options(args))
    if not diffs:
        print(f"derive: {out}/ is current")
        return 0
    sys.stdout.write("".join(diffs))
    parts = ["derive", "generate", *args.operators] + (["--model", str(args.model)] if args.model else [])
    if args.trace_from:
        parts += ["--from", args.trace_from, *(f"--shape {s}" for s in args.shape)]
    command = " ".join(parts + (["--out", str(out)] if out != DEFAULT_OUT else []))
    print(f"derive: {len(diffs)} file(s) in {out}/ would change; run `{command}` to update them", file=sys.stderr)
    return 1


def run_claim(args: argparse.Namespace) -> int:
    model = one_model(args)
    kind, formula = next((k, getattr(args, k)) for k in ("vjp", "jacobian", "jvp", "vjp_jvp")
                         if getattr(args, k) is not None)
    fixed = dict(_setting(text, "--fix", "gamma=1") for text in args.fix)
    let = dict(_setting(text, "--let", "rstd=1/sqrt(mean(x[j]**2, j) + eps)") for text in args.let)
    try:
        sizes = tuple(int(s) for s in args.sizes.split(","))
    except ValueError:
        raise ClaimError(f"--sizes {args.sizes}: give positive integers separated by commas, e.g. 1,2,3") from None
    if not sizes or min(sizes) < 1:
        raise ClaimError(f"--sizes {args.sizes}: give positive integers separated by commas, e.g. 1,2,3")
    verdict = api.claim(model, args.wrt, formula, kind, fixed=fixed, let=let, diagonal=args.diagonal,
                        sizes=sizes)
    print(report(verdict, model, formula))
    return 0 if verdict.equal else 1


def _setting(text: str, option: str, example: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name.strip() or not value.strip():
        raise ClaimError(f"{option} {text}: write NAME={'VALUE' if option == '--fix' else 'FORMULA'}, "
                         f"e.g. {option} {example}")
    return name.strip(), value.strip()


def run_pdf(args: argparse.Namespace) -> int:
    """The documents of --model (derived now), else of --source, else those derive ships."""
    check_output(args.out)  # before deriving
    if args.model is not None:
        models = selected(args, args.documents) or []
        files = render_models(models, progress_printer(args), options=Options(cache=RenderCache()))
        pdfs = compile_documents(files, [m.name for m in models], args.out, progress_printer(args))
    else:
        pdfs = compile_pdfs(args.source or api.generated_folder(), args.out, args.documents, progress_printer(args))
    print(f"derive: {len(pdfs)} PDF(s) in {args.out}/")
    return 0


def run_show(args: argparse.Namespace) -> int:
    if args.order not in ("1", "2"):
        raise UsageError(f"--order {args.order}: the order is 1 (the Jacobian, VJP and JVP) or 2 (each VJP "
                         "differentiated along the tangents: vjp_jvp)")
    previous = pretty_use_unicode(not args.ascii)
    try:
        print(show_text(one_model(args), args.width, args.ascii, int(args.order)))
    finally:
        pretty_use_unicode(previous)
    return 0
