"""The ``derive`` command line: list, show, generate, check, claim, fuzz, bench and pdf, a thin layer
over ``derive.api``: the parser here, what each command runs in ``derive.commands``.

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

from .bench.command import add_bench_command
from .budget import MAX_SIZE, SETTINGS, STEP_SECONDS, TOTAL_SECONDS, limits, positive
from .commands import (
    DEFAULT_OUT,
    DEFAULT_PDF_OUT,
    INPUT_ERRORS,
    budget_of,
    progress_printer,
    run_check,
    run_claim,
    run_fuzz,
    run_generate,
    run_list,
    run_pdf,
    run_show,
)
from .errors import CompileError, TexMissingError
from .pipeline.generate import Interrupted, available_cpus
from .pipeline.output import WriteInterrupted
from .version import __version__


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

    def parse_args(self, args=None, namespace=None):
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
    _trace_options(show)
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
        _trace_options(sub)
        if name == "generate":
            sub.add_argument("--model-out", type=Path, metavar="FILE",
                             help="with --from: also write the traced model as a model file (for --model FILE)")
        sub.add_argument("--out", type=Path, help="output folder (default: generated; required with --model "
                                                   "or --from)")
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


def _model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, metavar="FILE",
                        help="a model file of your own (Python, @register factories like derive/ops/*.py)")


def _trace_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="trace_from", metavar="FILE.py:FUNCTION",
                        help="trace a Python function written with NumPy or the Array API into a model "
                             "(the operator takes the function's name; give each array argument's axes with --shape)")
    parser.add_argument("--shape", action="append", default=[], metavar="NAME=AXES",
                        help="with --from: an array argument's core axes by name, e.g. x=n, x=N,C,S, or "
                             "alpha=() for a scalar (repeatable)")


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


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


if __name__ == "__main__":
    sys.exit(main())
