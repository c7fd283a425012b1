"""The ``derive`` command line: list, show, generate, check, claim, fuzz and pdf, a thin layer over ``derive.api``.

Every command takes ``--model FILE`` to work on a user's model file instead of the built-ins.
Errors in the input (an unknown operator, a malformed model or formula, a failing template, a
path that cannot be written, found before any derivation) print one ``derive: error:`` line and
exit 2; nothing is written.  A misspelled option gets its command's usage and the closest option.
Ctrl-C exits 130 and says whether the output folder was written.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path

from sympy.printing.pretty.pretty import pretty_use_unicode

from . import api
from .bench.command import add_bench_command
from .budget import MAX_SIZE, SETTINGS, STEP_SECONDS, TOTAL_SECONDS, Budget, BudgetSettingError, limits, positive
from .errors import (
    ClaimError,
    CompileError,
    DerivationError,
    LoweringError,
    ModelError,
    ModelFileError,
    NotGeneratedError,
    OutputError,
    PluginError,
    RenderError,
    TexMissingError,
    UnknownOperatorError,
)
from .model import OperatorModel, registry
from .model.catalog import markdown_table
from .pipeline.cache import RenderCache
from .pipeline.generate import Interrupted, Options, available_cpus, render_models
from .pipeline.output import WriteInterrupted
from .pipeline.pdf import check_output, compile_documents, compile_pdfs
from .proof.claims import report
from .show import show_text
from .version import __version__

DEFAULT_OUT = Path("generated")
DEFAULT_PDF_OUT = Path("build/pdf")


class UsageError(ValueError):
    """Options that do not fit together."""


INPUT_ERRORS = (UsageError, UnknownOperatorError, PluginError, DerivationError, LoweringError,
                RenderError, ModelError, ModelFileError, ClaimError, OutputError, BudgetSettingError, NotGeneratedError)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if not hasattr(args, "step_seconds"):
            return args.run(args)
        with limits(budget_of(args), progress_printer(args)):  # loading the model file, deriving it
            return args.run(args)
    except INPUT_ERRORS as error:
        print(f"derive: error: {error}", file=sys.stderr)
        return 2
    except TexMissingError as error:
        print(f"derive: error: no LaTeX compiler found.\n{error}", file=sys.stderr)
        return 3
    except CompileError as error:
        print(f"derive: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print(f"derive: interrupted; {_interrupted(args, interrupt)}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`derive show OP | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:  # a safety net: never a bare traceback for a user's model
        if os.environ.get("DERIVE_TRACEBACK"):
            raise
        if isinstance(error, OSError) and error.filename is not None:  # a path of the user's
            print(f"derive: error: {error.filename}: {error.strerror}", file=sys.stderr)
            return 2
        print(f"derive: internal error: {type(error).__name__}: {error} "
              "(set DERIVE_TRACEBACK=1 to see where)", file=sys.stderr)
        return 3


def _interrupted(args: argparse.Namespace, interrupt: KeyboardInterrupt) -> str:
    """What an interrupted command did and did not write."""
    out = getattr(args, "out", None) or DEFAULT_OUT
    if isinstance(interrupt, WriteInterrupted):
        return f"{out}/ had been written in full first ({len(interrupt.changed)} files changed)"
    if args.run is run_pdf:
        return f"the PDFs compiled so far are in {out}/"
    if args.run is not run_generate:
        return "nothing was changed"
    done = f"; {interrupt}" if isinstance(interrupt, Interrupted) else ""
    return f"nothing was written to {out}/, which is as it was{done}"


class Parser(argparse.ArgumentParser):
    """An argument no command takes is reported with that command's usage, and an option misspelled
    with the closest one it has (``derive show --ordr 2``: did you mean --order?)."""

    commands: argparse._SubParsersAction

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = self.commands.choices[parsed.command]
            given = next((extra.split("=")[0] for extra in extras if extra.startswith("-")), None)
            if given is None:
                command.error(f"unrecognized arguments: {' '.join(extras)}")
            close = difflib.get_close_matches(given, [o for a in command._actions for o in a.option_strings], n=1)
            hint = f"did you mean {close[0]}?" if close else f"`{command.prog} -h` lists the options"
            command.error(f"unrecognized argument {given}; {hint}")
        return parsed


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="derive",
        description="Derive gradients of neural-network operators symbolically, generate NumPy kernels "
                    "(forward, vjp, jvp) from them, and check hand-derived formulas.",
    )
    parser.add_argument("--version", action="version", version=f"derive {__version__}")
    commands = parser.commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND",
                                                       dest="command")

    listing = commands.add_parser("list", help="list the known operators",
                                  description="List the known operators by category (built-in, from installed "
                                              "packages, and from --model FILE).")
    _model_option(listing)
    listing.add_argument("--markdown", action="store_true", help="a Markdown table (the README's operator table)")
    listing.set_defaults(run=run_list)

    show = commands.add_parser("show", help="print an operator's definition, Jacobian, VJP and JVP",
                               description="Print an operator's definition, its Jacobian entry for every "
                                           "differentiable input, and its VJP and JVP.")
    show.add_argument("operator", nargs="?",
                      help="operator name (see `derive list`; optional with a one-operator --model)")
    _model_option(show)
    show.add_argument("--width", type=int, default=100, help="wrap formulas at this many columns (default 100)")
    show.add_argument("--order", default="1", metavar="{1,2}",
                      help="1: the Jacobian, VJP and JVP (default); 2: the second order, each VJP differentiated "
                           "along the tangents, ending in each input's vjp_jvp")
    show.add_argument("--ascii", action="store_true",
                      help="plain ASCII in the names claims are typed in (dy, dot_x, epsilon) instead of "
                           "the documents' Unicode notation (ȳ, ẋ, ϵ)")
    _budget_options(show)
    show.set_defaults(run=run_show)

    for name, run, text in (
        ("generate", run_generate, "derive the operators and write their kernels into the output folder"),
        ("check", run_check, "exit 1 with a diff if the output folder is not what `derive generate` would write"),
    ):
        sub = commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        sub.add_argument("operators", nargs="*", metavar="OPERATOR",
                         help="operators to process (default: every built-in one, or every one in --model)")
        _model_option(sub)
        sub.add_argument("--out", type=Path, help="output folder (default: generated; required with --model)")
        sub.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
        sub.add_argument("--no-cache", action="store_true",
                         help="derive every operator even if the render cache has it (cache: $DERIVE_CACHE_DIR, "
                              "else $XDG_CACHE_HOME/derive, else ~/.cache/derive)")
        sub.add_argument("-j", "--jobs", type=positive_int, default=available_cpus(),
                         help="derive in at most this many processes (default: the available CPUs)")
        _budget_options(sub)
        sub.set_defaults(run=run)
    _claim_parser(commands)
    _fuzz_parser(commands)
    add_bench_command(commands)

    pdf = commands.add_parser(
        "pdf", help="compile the generated LaTeX documents to PDF (needs latexmk or pdflatex)",
        description="Compile the built-in operators' LaTeX documents (and the handbook) to PDF with latexmk or "
                    "pdflatex, from any folder: the documents derive ships (derive.generated), or those of "
                    "--source or --model.  Each is compiled in a temporary folder inside the output folder "
                    "holding only what it needs; its PDF, log and .bbl are then renamed into the output folder "
                    "(replacing a file or link there, never writing through it).")
    pdf.add_argument("documents", nargs="*", metavar="OPERATOR",
                     help="operators to compile, or 'handbook' (default: every operator and the handbook; "
                          "with --model, every operator of the file)")
    _model_option(pdf)
    pdf.add_argument("--source", type=Path, metavar="FOLDER",
                     help="a folder `derive generate --out` wrote, whose latex/ to compile (default: the documents "
                          "derive ships)")
    pdf.add_argument("--out", type=Path, default=DEFAULT_PDF_OUT, metavar="FOLDER",
                     help="where the PDFs go (default: build/pdf; not a symbolic link)")
    pdf.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    _budget_options(pdf)
    pdf.set_defaults(run=run_pdf)
    return parser


def _budget_options(parser: argparse.ArgumentParser) -> None:
    """The limits on deriving a model (``derive.budget``); over one, an error naming the step."""
    group = parser.add_argument_group(
        "budget", "limits on deriving a model; over one, derive stops with an error naming the model and the "
                  "step (the LaTeX document alone over its step budget is written abridged, the kernels whole)")
    for name, default, metavar, text in (
            ("step_seconds", STEP_SECONDS, "SECONDS", "seconds one step of the derivation may take"),
            ("total_seconds", TOTAL_SECONDS, "SECONDS", "seconds the whole command may take to derive"),
            ("max_size", MAX_SIZE, "NODES", "nodes one expression may have")):
        option, variable = SETTINGS[name]
        group.add_argument(option, dest=name, type=positive, metavar=metavar,
                           help=f"{text} (default: ${variable}, else {default:g})")


def budget_of(args: argparse.Namespace) -> Budget:
    """The limits the options give, else the environment's, else the defaults."""
    return Budget.from_environment(**{name: getattr(args, name, None) for name in SETTINGS})


def _model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, metavar="FILE",
                        help="a model file of your own (Python, @register factories like derive/ops/*.py)")


def _claim_parser(commands) -> None:
    claim = commands.add_parser(
        "claim", help="check a hand-derived Jacobian, VJP, JVP or second-order formula against the derivation",
        description="Check a formula against the derived one: equal or not, symbolically where SymPy can "
                    "decide and always at random points for several sizes, each axis its own length.  "
                    "Formulas use SymPy's notation and the operator's names as `derive show --ascii` prints them "
                    "(parsed, never run as Python): inputs x[k], the cotangent dy[i], "
                    "tangents dot_x[k], the output y[i], sizes (n), parameters (epsilon), named "
                    "intermediates (r, mu, sigma, S) and your own (--let), Sum(f, (j, 0, n - 1)), and the "
                    "helpers sum(f, j), mean(f, j), delta(i, k), sigmoid(t).  "
                    "Exit 0 equal, 1 not equal, 2 a formula it cannot read.")
    claim.add_argument("operator", nargs="?", help="operator name (optional with a one-operator --model)")
    _model_option(claim)
    claim.add_argument("--wrt", required=True, metavar="INPUT", help="the input differentiated by")
    kinds = claim.add_mutually_exclusive_group(required=True)
    kinds.add_argument("--vjp", metavar="FORMULA", help="the gradient entry, e.g. dx[k]")
    kinds.add_argument("--jacobian", metavar="FORMULA", help="the Jacobian entry d y[i] / d x[k]")
    kinds.add_argument("--jvp", metavar="FORMULA", help="the output tangent entry dot_y[i]")
    kinds.add_argument("--vjp-jvp", metavar="FORMULA",
                       help="the second order dot_dx[k]: the gradient entry differentiated along the tangents "
                            "dot_x, dot_gamma, ... of every input, dy held fixed (the kernels' vjp_jvp; "
                            "`derive show --order 2` derives it); checked against the engine and the oracle")
    claim.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE",
                       help="evaluate both sides with an input (every entry) or a parameter set to a number, "
                            "e.g. --fix gamma=1 --fix epsilon=0, or a formula-selecting parameter set to one "
                            "of its choices, e.g. --fix approximate=tanh (repeatable)")
    claim.add_argument("--let", action="append", default=[], metavar="NAME=FORMULA",
                       help="name an intermediate the formula may use, "
                            "e.g. --let \"rstd=1/sqrt(mean(x[j]**2, j) + eps)\" "
                            "(repeatable; one may use the ones before)")
    claim.add_argument("--diagonal", action="store_true",
                       help="compare only the diagonal of a Jacobian claim (k set to i), "
                            "for statements about dy_i/dx_i")
    claim.add_argument("--sizes", default="1,2,3,4", help="axis lengths to test at (default 1,2,3,4)")
    _budget_options(claim)
    claim.set_defaults(run=run_claim)


def _fuzz_parser(commands) -> None:
    fuzz = commands.add_parser(
        "fuzz", help="derive, render and prove random operator models (a differential fuzzer)",
        description="Generate random operator models from the engine's building blocks (a tenth of them deep: "
                    "nested functions, long products of sums), derive them, render their kernels and prove each "
                    "against the oracle.  Every failing model is printed as a model file to re-run with "
                    "`derive generate --model FILE --out DIR`.  Exit 0 when every model was proved or refused "
                    "with a clear error (a deep one: or stopped by its budget of 20 s), 1 otherwise.")
    fuzz.add_argument("--count", type=positive_int, default=100, help="how many models (default 100)")
    fuzz.add_argument("--seed", type=int, default=0, help="the run's seed (default 0): the same seed, the same models")
    fuzz.add_argument("--timeout", type=positive_int, default=60,
                      help="seconds one model may take before it counts as failing (default 60)")
    fuzz.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    fuzz.set_defaults(run=run_fuzz)


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


def selected(args: argparse.Namespace, names: list[str]) -> list[OperatorModel] | None:
    """The models named on the command line (from --model FILE if given); None: all built-ins."""
    if args.model is None:
        return [registry.get(name) for name in names] if names else None
    models = api.load_file(args.model)
    for name in names:
        if name not in models:
            raise registry.unknown(name, list(models))
    return [models[name] for name in names] if names else list(models.values())


def one_model(args: argparse.Namespace) -> OperatorModel:
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
    if args.out is None and args.model is not None:
        raise UsageError(f"derive {'generate' if args.run is run_generate else 'check'} --model needs "
                             "--out DIR: the folder for your operators' files (generated/ holds the built-ins)")
    return args.out if args.out is not None else DEFAULT_OUT


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def render_options(args: argparse.Namespace) -> Options:
    return Options(cache=None if args.no_cache else RenderCache(), jobs=args.jobs)


def run_generate(args: argparse.Namespace) -> int:
    out = _out(args)
    changed = api.write(selected(args, args.operators), out, progress_printer(args), render_options(args))
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
        models = selected(args, args.documents)
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


if __name__ == "__main__":
    sys.exit(main())
