"""The ``derive`` command line: list, show, generate and check operators."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import sympy as sp
from sympy.printing.pretty.pretty import PrettyPrinter, pretty_use_unicode
from sympy.printing.pretty.stringpict import prettyForm

from . import __version__, registry
from .calculus.differentiate import DerivationError
from .calculus.pipeline import derive
from .emit.display import intermediate_symbols, readable
from .emit.numpy_printer import LoweringError
from .emit.render import RenderError
from .bench.command import add_bench_command
from .cache import RenderCache
from .generate import Options, available_cpus, check, generate

DEFAULT_OUT = Path("generated")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (registry.UnknownOperatorError, DerivationError, LoweringError, RenderError) as error:
        print(f"derive: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("derive: interrupted; nothing was changed", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="derive",
        description="Derive gradients of neural-network operators symbolically and generate "
                    "NumPy kernels (forward, vjp, jvp) from them.",
    )
    parser.add_argument("--version", action="version", version=f"derive {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="list the known operators", description="List the known operators by category.")
    listing.set_defaults(run=run_list)

    show = commands.add_parser("show", help="print an operator's definition, Jacobian, VJP and JVP",
                               description="Print an operator's definition, its Jacobian entry for every "
                                           "differentiable input, and its VJP and JVP.")
    show.add_argument("operator", help="operator name (see `derive list`)")
    show.add_argument("--width", type=int, default=100, help="wrap formulas at this many columns (default 100)")
    show.add_argument("--ascii", action="store_true", help="plain ASCII instead of Unicode")
    show.set_defaults(run=run_show)

    for name, run, text in (
        ("generate", run_generate, "derive the operators and write their kernels into the output folder"),
        ("check", run_check, "exit 1 with a diff if the output folder is not what `derive generate` would write"),
    ):
        sub = commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        sub.add_argument("operators", nargs="*", metavar="OPERATOR", help="operators to process (default: all)")
        sub.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: generated)")
        sub.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
        sub.add_argument("--no-cache", action="store_true",
                         help="derive every operator even if the render cache has it (cache: $DERIVE_CACHE_DIR, "
                              "else $XDG_CACHE_HOME/derive, else ~/.cache/derive)")
        sub.add_argument("-j", "--jobs", type=positive_int, default=available_cpus(),
                         help="derive in at most this many processes (default: the available CPUs)")
        sub.set_defaults(run=run)
    add_bench_command(commands)
    return parser


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def render_options(args: argparse.Namespace) -> Options:
    return Options(cache=None if args.no_cache else RenderCache(), jobs=args.jobs)


def progress_printer(args: argparse.Namespace):
    if args.quiet:
        return lambda message: None
    return lambda message: print(f"derive: {message}", file=sys.stderr, flush=True)


def run_list(args: argparse.Namespace) -> int:
    models = [registry.get(name) for name in registry.names()]
    for category in dict.fromkeys(m.category for m in models):
        print(f"{category}:")
        for model in (m for m in models if m.category == category):
            inputs = ", ".join(i.name + ("?" if i.optional else "") for i in model.inputs)
            print(f"  {model.name:<12} ({inputs})  {model.summary}")
    return 0


def run_generate(args: argparse.Namespace) -> int:
    changed = generate(args.out, args.operators, progress_printer(args), render_options(args))
    verb = "updated" if changed else "unchanged"
    print(f"derive: {args.out}/ {verb}" + (f" ({len(changed)} files: {', '.join(changed)})" if changed else ""))
    return 0


def run_check(args: argparse.Namespace) -> int:
    diffs = check(args.out, args.operators, progress_printer(args), render_options(args))
    if not diffs:
        print(f"derive: {args.out}/ is current")
        return 0
    sys.stdout.write("".join(diffs))
    command = " ".join(["derive", "generate", *args.operators] + (["--out", str(args.out)] if args.out != DEFAULT_OUT else []))
    print(f"derive: {len(diffs)} file(s) in {args.out}/ would change; run `{command}` to update them", file=sys.stderr)
    return 1


def run_show(args: argparse.Namespace) -> int:
    previous = pretty_use_unicode(not args.ascii)
    try:
        print(show_text(args))
    finally:
        pretty_use_unicode(previous)
    return 0


def show_text(args: argparse.Namespace) -> str:
    derivation = derive(registry.get(args.operator))
    model = derivation.model
    printer = PrettyPrinter({"use_unicode": not args.ascii, "num_columns": args.width})

    def line(label: str, expr: sp.Expr, named: bool = True) -> str:
        form = printer._print(readable(expr, model) if named else expr)
        return prettyForm(*form.left(label)).render(wrap_line=True, num_columns=args.width, use_unicode=not args.ascii)

    shapes = ", ".join(f"{i.name}{list(i.dims)}" + (" (optional)" if i.optional else "") for i in model.inputs)
    params = ", ".join(f"{p.name}={p.default!r}" for p in model.params) or "none"
    out = [f"{model.name}: {model.summary}\ninputs: {shapes}\nparameters: {params}", "definition:"]
    out += [line(f"y{list(model.output_indices)} = ", model.output)]
    for symbol, definition in intermediate_symbols(model):
        out += [line(f"  where {symbol} = ", definition, named=False)]
    for gradient in derivation.gradients:
        name, wrt, outputs = gradient.input.name, gradient.wrt, list(model.output_indices)
        out += [f"with respect to {name}:"]
        out += [line(f"  Jacobian  d y{outputs} / d {wrt} = ", gradient.jacobian)]
        out += [line(f"  vjp       d{name}{list(gradient.wrt_indices)} = ", gradient.vjp)]
        out += [line(f"  jvp       dot_y{outputs} += ", gradient.jvp)]
    return "\n\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
