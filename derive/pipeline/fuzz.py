"""A differential fuzzer for the engine, in the tradition of Csmith and YARPGen.

``random_model(seed)`` writes the source of a random operator model file from the engine's
building blocks: sums over one or two indices, products, quotients, powers, exp, log, sqrt,
sigmoid, tanh, and in some models a function of the model's own (``soft``, whose elementary form is
a quotient, in place of tanh); one or two inputs (vectors over ``n`` or matrices over ``m x n``), an optional scale
input, named intermediates shared by several terms, per-row and elementwise outputs.  Domains stay
valid by construction (log and sqrt and fractional powers only of positive quantities such as
``exp(...)`` or ``1 + x**2``).  A share of the models is deep (``deep=True``): the output nested in
8 to 30 functions, or multiplied by 5 to 30 sums, to hold the budgets (``derive.budget``).  ``run``
loads each model from its file, derives it, renders its kernels (every kernel target: NumPy, numba,
Array API) and proves each against the oracle (``derive.proof.kernel``); a fifth of them
(``is_documented``) render their LaTeX document too, every displayed form checked as it is built.
A model the engine refuses with a clear error is counted, not failed, and so is a deep model
stopped by its budget; a kernel that disagrees with the oracle, warns of an invalid operation while
proved (a NaN made, even one thrown away: a value read before it was set), a model that runs past
its budget, or any crash, is a failure, reported with the model file that reproduces it
(``derive generate --model FILE``).
"""

from __future__ import annotations

import contextlib
import random
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..budget import Budget, OverBudget, limits
from ..calculus.differentiate import DerivationError
from ..calculus.validate import ModelError
from ..errors import LoweringError
from ..model.files import ModelFileError, load_model
from ..proof.kernel import ProofError
from ..targets import TARGETS
from .render import render_model

KERNEL_TARGETS = ("numpy", "numba", "array_api")
DOCUMENT_SHARE = 0.2
"""The share of models whose LaTeX document is rendered too: every displayed form (means, forms through
x-hat, y or attention's weights, the second order through the tangents) is checked against the exact
one as the document is built, so a display rewrite wrong for some model is a finding."""
"""The targets whose kernels each random model's are proved on (the documents are left out: slow)."""
REFUSALS = (ModelError, LoweringError, DerivationError, ModelFileError)
"""A model the engine declines with a clear error: not a wrong kernel (a ProofError is one)."""
DEEP_SHARE = 0.1
"""The share of deep models (drawn apart: the other models are what they were without them)."""
DEEP_SECONDS = 20.0
"""A deep model's budget in all (a quarter of it per step): it is proved or stopped within it."""
GRACE = 10.0
"""Seconds past its budget after which a model counts as running away (the budget did not stop it)."""

HEADER = '''"""Random model {name} (derive fuzz, seed {seed}).{note}"""

import sympy as sp

from derive.functions import sigmoid
from derive.model import Input, OperatorModel, Param, index, size
from derive.registry import register


class soft(sp.Function):
    """t / sqrt(1 + t**2): a model's own function, between -1 and 1 like tanh."""

    def fdiff(self, argindex=1):
        return (1 + self.args[0]**2)**sp.Rational(-3, 2)

    def as_elementary(self):
        return self.args[0] / sp.sqrt(1 + self.args[0]**2)

    def _eval_evalf(self, prec):
        return self.as_elementary()._eval_evalf(prec)

    def _numpycode(self, printer):
        t = printer._print(self.args[0])
        return f"(({{t}})/np.sqrt(1 + ({{t}})**2))"


@register
def {name}() -> OperatorModel:
    n, m = size("n"), size("m")
    i, j, l, r = (index(v, n) for v in ("i", "j", "l", "r"))
    p, q, u = (index(v, m) for v in ("p", "q", "u"))
    eps = sp.Symbol("epsilon", positive=True)
'''


class _Writer:
    """Random expressions as Python source over the indices in scope (``n`` axis and ``m`` axis)."""

    def __init__(self, rng: random.Random, inputs: dict[str, tuple[str, ...]], shared: list[str]) -> None:
        self.rng, self.inputs, self.shared = rng, inputs, shared
        self.free = {"n": ["j", "l", "r"], "m": ["q", "u"]}

    def leaf(self, scope: dict[str, list[str]]) -> str:
        choices = [name for name, axes in self.inputs.items() if all(scope[a] for a in axes)]
        roll = self.rng.random()
        if self.shared and roll < 0.2:
            return self.rng.choice(self.shared)
        if choices and roll < 0.85:
            name = self.rng.choice(choices)
            return f"{name}[{', '.join(self.rng.choice(scope[a]) for a in self.inputs[name])}]"
        return self.rng.choice(["eps", "sp.Rational(3, 2)", "2", "sp.Rational(-1, 3)"])

    def expr(self, depth: int, scope: dict[str, list[str]]) -> str:
        if depth <= 0 or self.rng.random() < 0.2:
            return self.leaf(scope)
        kind = self.rng.choice(["add", "sub", "mul", "div", "pow", "exp", "log", "sqrt", "sigmoid", "tanh",
                                "sum", "sum", "sum2"])
        sub = lambda: self.expr(depth - 1, scope)
        if kind == "add":
            return f"({sub()} + {sub()})"
        if kind == "sub":
            return f"({sub()} - {sub()})"
        if kind == "mul":
            return f"({sub()})*({sub()})"
        if kind == "div":
            return f"({sub()})/({self.positive(depth - 1, scope)})"
        if kind == "pow":
            return self.rng.choice([f"({sub()})**2", f"({self.positive(depth - 1, scope)})**sp.Rational(3, 2)",
                                    f"({self.positive(depth - 1, scope)})**(-1)"])
        if kind == "exp":
            return f"sp.exp(sp.tanh({sub()}))"
        if kind in ("log", "sqrt"):
            return f"sp.{kind}({self.positive(depth - 1, scope)})"
        if kind in ("sigmoid", "tanh"):
            return f"{'sigmoid' if kind == 'sigmoid' else 'sp.tanh'}({sub()})"
        return self.sum(depth, scope, 2 if kind == "sum2" else 1)

    def positive(self, depth: int, scope: dict[str, list[str]]) -> str:
        inner = self.expr(depth, scope)
        return self.rng.choice([f"(1 + ({inner})**2)", f"sp.exp(sp.tanh({inner}))", f"(({inner})**2 + eps)",
                                f"(2 + sp.tanh({inner}))", f"sigmoid({inner})"])

    def sum(self, depth: int, scope: dict[str, list[str]], count: int) -> str:
        axes = [a for a in ("n", "m") if any(a in dims for dims in self.inputs.values())]
        limits, inner = [], {a: list(v) for a, v in scope.items()}
        for _ in range(count):
            axis = self.rng.choice(axes)
            unused = [v for v in self.free[axis] if v not in inner[axis]]
            if not unused:
                break
            var = unused[0]
            inner[axis].append(var)
            limits.append(f"({var}, 0, {axis} - 1)")
        if not limits:
            return self.leaf(scope)
        return f"sp.Sum({self.expr(depth - 1, inner)}, {', '.join(limits)})"


def random_model(seed: int | str, name: str = "fuzz_model", depth: int = 3, deep: bool = False) -> str:
    """The source of one random model file (its operator is ``name``).  Whether tanh is written as
    the model's own ``soft``, and a deep model's nesting or product, are drawn from generators of
    their own, so a seed's model is otherwise what it was before them (the regression seeds stay
    the models they were)."""
    rng = random.Random(seed)
    matrix = rng.random() < 0.3
    axes = ("m", "n") if matrix else ("n",)
    inputs = {v: axes for v in ("a", "b")[:rng.choice([1, 2])]}
    optional = rng.random() < 0.3
    if optional:
        inputs["g"] = ("n",)
    out_choices = [(), ("i",)] + ([("p",), ("p", "i")] if matrix else [])
    out = rng.choice(out_choices)
    scope = {"n": [v for v in out if v == "i"], "m": [v for v in out if v == "p"]}
    closed: list[str] = []
    lines = []
    for k in range(rng.choice([0, 0, 1, 2])):  # named intermediates, closed sums shared by the terms
        writer = _Writer(rng, {v: d for v, d in inputs.items() if v != "g"}, closed)
        body = writer.sum(depth - 1, {"n": [], "m": []}, rng.choice([1, 2]))
        lines.append(f"    s{k} = {body}")
        closed.append(f"s{k}")
    writer = _Writer(rng, {v: d for v, d in inputs.items() if v != "g"}, closed)
    output = writer.expr(depth, scope)
    reached = output
    for k in reversed(range(len(closed))):  # what the output reads, through the intermediates it names
        if f"s{k}" in reached:
            reached += lines[k]
    for v, dims in inputs.items():  # every input takes part (an unused one is refused, rightly)
        if f"{v}[" not in reached:
            output = f"({output}) + {_use(v, dims, scope, optional and v == 'g')}"
    if optional and "g[" in output and "i" in scope["n"]:
        output = f"g[i]*({output})"
    elif optional:
        output = f"({output})*sp.Sum(g[j]**2, (j, 0, n - 1))"
    declared = [f'    {v} = Input("{v}", ({", ".join(dims)},)' + (", optional=True, default=1)" if v == "g" else ")")
                for v, dims in inputs.items()]
    if deep:
        output = _deepen(output, random.Random(f"{seed}:deepen"), inputs["a"])
    if random.Random(f"{seed}:own").random() < 0.4:
        output, lines = output.replace("sp.tanh(", "soft("), [line.replace("sp.tanh(", "soft(") for line in lines]
    where = ", ".join(f'("s{k}", s{k})' for k in range(len(closed)))
    body = "\n".join(declared + lines) + "\n" + f'''    return OperatorModel(
        name="{name}", summary="a random model", category="fuzz",
        inputs=({", ".join(inputs)},), params=(Param("eps", 0.5, eps, "a positive constant"),),
        output_indices=({", ".join(out)}{"," if len(out) == 1 else ""}),
        output={output},
        where=({where}{"," if len(closed) == 1 else ""}),
    )
'''
    return HEADER.format(name=name, seed=seed, note=" Deep." if deep else "") + body


def _deepen(output: str, rng: random.Random, axes: tuple[str, ...]) -> str:
    """``output`` nested in 8 to 30 functions (valid anywhere), or times a product of 5 to 30 sums of a."""
    if rng.random() < 0.5:
        for _ in range(rng.randint(8, 30)):
            output = rng.choice(["sp.exp(sp.tanh({}))", "sp.log(1 + ({})**2)", "sp.sqrt(1 + ({})**2)",
                                 "sigmoid({})"]).format(output)
        return output
    index = {"n": "j", "m": "q"}
    entry, bounds = ", ".join(index[a] for a in axes), ", ".join(f"({index[a]}, 0, {a} - 1)" for a in axes)
    factors = [f"sp.Sum(a[{entry}]**{rng.randint(1, 3)} + {k + 1}, {bounds})" for k in range(rng.randint(5, 30))]
    return f"({output})*" + "*".join(factors)


def _use(name: str, dims: tuple[str, ...], scope: dict, optional: bool) -> str:
    if optional:
        return "0"
    index = {"n": "j", "m": "q"}
    limits = ", ".join(f"({index[a]}, 0, {a} - 1)" for a in dims)
    return f"sp.Sum(sp.tanh({name}[{', '.join(index[a] for a in dims)}]), {limits})"


@dataclass
class Report:
    ran: int = 0
    refused: int = 0
    stopped: int = 0
    """Deep models stopped by their budget with its error (in time)."""
    failures: list[tuple[str, str]] = field(default_factory=list)
    """(model source, what went wrong) for each model whose kernel is wrong or that crashed."""


class _TooSlow(BaseException):  # not caught as an engine crash
    pass


def is_documented(seed: int | str) -> bool:
    """Is the model of ``seed`` one whose document is rendered too (its displayed forms checked)?"""
    return random.Random(f"{seed}:document").random() < DOCUMENT_SHARE


def is_deep(seed: int | str) -> bool:
    """Is the model of ``seed`` (``"run seed:number"``) one of the deep ones?"""
    return random.Random(f"{seed}:deep").random() < DEEP_SHARE


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raise ``_TooSlow`` after ``seconds`` (Unix main thread; elsewhere no limit)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not seconds or not usable:
        yield
        return

    def expire(signum, frame):
        raise _TooSlow()

    previous = signal.signal(signal.SIGALRM, expire)
    outer, started = signal.setitimer(signal.ITIMER_REAL, seconds)[0], time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:  # an alarm set outside (a test's) is put back, due when it was
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 1e-6))


def check_source(source: str, folder: Path, name: str, seconds: float | None = None,
                 deep: float | None = None, documented: bool = False) -> str | None:
    """None when the model is proved or refused with a clear error; otherwise what went wrong
    (a model taking longer than ``seconds`` too: the engine should not hang on small models).
    ``deep``: the seconds a deep model has; stopped by that budget in time, "stopped: <its error>".
    ``documented``: render its LaTeX document too."""
    path = folder / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    total = deep if deep is not None else seconds
    budget = Budget(step_seconds=deep / 4, total_seconds=deep) if deep is not None else \
        Budget(total_seconds=seconds) if seconds else Budget()
    started = time.monotonic()
    try:
        with _time_limit(total + GRACE if total else None):
            outcome = _check(path, name, budget, deep is not None, documented)
    except _TooSlow:
        return f"ran away: not stopped by its budget of {total or 0:g} s within {(total or 0) + GRACE:g} s"
    if deep is not None and outcome and outcome.startswith("stopped: ") and time.monotonic() - started > deep + GRACE:
        return f"ran away: stopped {time.monotonic() - started:.0f} s into its budget of {deep:g} s"
    return outcome


def _check(path: Path, name: str, budget: Budget, deep: bool, documented: bool = False) -> str | None:
    wanted = (*KERNEL_TARGETS, "latex") if documented else KERNEL_TARGETS
    try:
        with limits(budget):
            model = load_model(path)  # its domains are valid by construction: a NaN made is a finding
            render_model(model, tuple(t for t in TARGETS if t.name in wanted), strict=True)
    except OverBudget as error:  # for a model that is not deep, a failure
        if error.kind == "total" and not deep:
            return f"too slow: not proved within {budget.total_seconds:g} s"
        return "stopped: " + str(error)
    except ProofError as error:
        return str(error)
    except REFUSALS as error:
        return "refused: " + str(error)
    except Exception as error:  # a crash inside the engine is a finding too
        return f"crash: {type(error).__name__}: {error}"
    return None


def run(count: int, seed: int = 0, progress=lambda message: None, start: int = 0,
        seconds: float | None = 60, deep: bool = True, deep_seconds: float = DEEP_SECONDS) -> Report:
    """Generate, derive, render and prove ``count`` random models (numbered from ``start``), each
    within ``seconds``; ``deep``: a share of them deep, each proved or stopped within ``deep_seconds``."""
    report = Report()
    with tempfile.TemporaryDirectory(prefix="derive-fuzz-") as folder:
        for number in range(start, start + count):
            name = f"fuzz_{seed}_{number}"
            deep_one = deep and is_deep(f"{seed}:{number}")
            source = random_model(f"{seed}:{number}", name, deep=deep_one)
            started = time.perf_counter()
            outcome = check_source(source, Path(folder), name, seconds,
                                   min(deep_seconds, seconds or deep_seconds) if deep_one else None,
                                   documented=not deep_one and is_documented(f"{seed}:{number}"))
            report.ran += 1
            if outcome is not None and outcome.startswith("refused: "):
                report.refused += 1
            elif outcome is not None and outcome.startswith("stopped: ") and deep_one:
                report.stopped += 1
            elif outcome is not None:
                report.failures.append((source, outcome))
            progress(f"{name}: {outcome or 'proved'} ({time.perf_counter() - started:.2f} s)")
    return report


def failing_file(source: str, problem: str) -> str:
    """The model file to re-run, with what went wrong in its docstring."""
    note = "\n\n" + "\n".join(f"{line}" for line in problem.replace('"""', "'''").splitlines()) + "\n"
    head, rest = source.split('"""', 2)[1], source.split('"""', 2)[2]
    return f'"""{head}{note}"""' + rest
