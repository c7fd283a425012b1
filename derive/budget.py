"""Limits on deriving a model: seconds per step, seconds in all (``--timeout``) and expression size.

``limits(budget, report)`` holds a run to ``budget``; the pipeline runs each stage in
``step("simplifying the vjp of x")`` and checks what it made with ``check_size``.  Over a limit
raises ``OverBudget`` naming the model and the step.  In a main thread (the CLI's, a render
worker's) a SIGALRM timer stops a step when its time is up and reports a step that runs long; in
other threads time is checked between steps.  Outside ``limits`` the environment's limits apply.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TypeVar

import sympy as sp

from .errors import DerivationError

STEP_SECONDS, TOTAL_SECONDS, MAX_SIZE = 120.0, 1800.0, 50_000
"""The defaults, from the built-in operators cold (README, "Budgets"): their slowest step takes 9.5 s
of CPU (attention's LaTeX second order), the slowest whole operator 41 s (attention), the largest
expression has 5,927 nodes (group_norm's second derivative)."""
SETTINGS = {"step_seconds": ("--step-timeout", "DERIVE_STEP_TIMEOUT"), "total_seconds": ("--timeout", "DERIVE_TIMEOUT"),
            "max_size": ("--max-size", "DERIVE_MAX_SIZE")}
"""Each limit's command-line option and environment variable."""
KINDS = {"step": "step_seconds", "total": "total_seconds", "size": "max_size"}
"""An ``OverBudget``'s kind -> the limit it went over."""
REPORT_AFTER, REPORT_EVERY = 5.0, 15.0
"""A step running this long (seconds) is reported, and again each ``REPORT_EVERY`` seconds."""

Report = Callable[[str], None]
T = TypeVar("T")


class BudgetSettingError(ValueError):
    """A limit given as something other than a positive number."""


class OverBudget(DerivationError):
    """A model's derivation went over a limit; ``args`` (so it survives a worker process): the
    message, the kind of limit ("step", "total" or "size"), the step and the limit in words."""

    def __str__(self) -> str:
        return str(self.args[0])

    @property
    def kind(self) -> str:
        return str(self.args[1])

    @property
    def step(self) -> str:
        return str(self.args[2])

    @property
    def limit(self) -> str:
        return str(self.args[3])


class _Expired(BaseException):
    """Raised by the timer inside a step (not an Exception: no ``except Exception`` swallows it)."""


@dataclass(frozen=True)
class Budget:
    step_seconds: float = STEP_SECONDS
    total_seconds: float = TOTAL_SECONDS
    max_size: int = MAX_SIZE
    """Nodes of one expression's tree (``tree_size``)."""
    deadline: float | None = None
    """``time.monotonic()`` by which the whole run ends (set by ``limits``; passed to worker processes)."""

    def __post_init__(self) -> None:
        for name, (option, _) in SETTINGS.items():
            _positive(str(getattr(self, name)), option)

    @classmethod
    def from_environment(cls, **given: float | None) -> Budget:
        """The defaults, then the environment's ``DERIVE_*`` variables, then ``given`` (None: not given)."""
        values: dict[str, float] = {}
        for name, (_, variable) in SETTINGS.items():
            text = os.environ.get(variable, "").strip()
            if text:
                values[name] = _positive(text, variable)
            if given.get(name) is not None:
                values[name] = float(given[name])  # type: ignore[arg-type]
        if "max_size" in values:
            values["max_size"] = int(values["max_size"])
        return cls(**values)  # type: ignore[arg-type]

    def limit_text(self, kind: str) -> str:
        """'the time budget of 60 s per step' for a kind of limit ("step", "total", "size")."""
        if kind == "size":
            return f"the size budget of {self.max_size:,} nodes"
        seconds = self.step_seconds if kind == "step" else self.total_seconds
        return f"the time budget of {seconds:g} s{' per step' if kind == 'step' else ''}"


def _positive(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise BudgetSettingError(f"{where}={text}: give a positive number (seconds, or nodes for the size)")
    return value


def positive(text: str) -> float:
    """An option's value (for argparse)."""
    return _positive(text, "the value")


@dataclass
class _Level:
    what: str
    resumed: float
    spent: float = 0.0
    """Own time before ``resumed`` (the time of steps inside it is theirs)."""
    reported: float = field(default_factory=lambda: REPORT_AFTER)
    """Own time at which it is reported next."""

    def own(self, now: float) -> float:
        return self.spent + now - self.resumed


@dataclass
class _Run:
    budget: Budget
    report: Report | None = None
    subject: tuple[str, str] | None = None
    levels: list[_Level] = field(default_factory=list)
    timed: bool = False
    """SIGALRM is ours while a step runs (main thread only)."""
    busy: bool = False
    implicit: bool = False
    """Started by a step outside ``limits``: the environment's limits, read again for each outermost step."""
    previous: tuple = ()
    """(handler, when its timer was due or None, its interval) to put back after the last step."""

    def path(self) -> str:
        return ": ".join(level.what for level in self.levels) or "the derivation"

    def over(self, kind: str, detail: str = "") -> OverBudget:
        name, source = self.subject or ("", "")
        who = f"operator {name!r}{f' ({source})' if source else ''}: " if name else ""
        did = "did not finish within" if kind == "total" else "exceeded" if kind == "step" else f"made {detail}, over"
        limit, (option, variable) = self.budget.limit_text(kind), SETTINGS[KINDS[kind]]
        return OverBudget(f"{who}{self.path()} {did} {limit} ({option} or {variable}); raise it, or simplify the "
                          "model (fewer nested functions, fewer sums multiplied together)", kind, self.path(), limit)

    def enter(self, what: str) -> _Level:
        self.busy, now, level = True, time.monotonic(), _Level(what, time.monotonic())
        if self.budget.deadline is not None and now >= self.budget.deadline:
            self.levels.append(level)
            error = self.over("total")
            self.levels.pop()
            self.busy = False
            raise error
        if self.levels:
            self.levels[-1].spent += now - self.levels[-1].resumed
        else:
            if self.implicit:
                self.budget = replace(Budget.from_environment(), deadline=None)
            if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
                handler = signal.signal(signal.SIGALRM, self._alarm)
                delay, interval = signal.setitimer(signal.ITIMER_REAL, 0)
                self.previous, self.timed = (handler, now + delay if delay else None, interval), True
        self.levels.append(level)
        self._arm(now)
        self.busy = False
        return level

    def leave(self, level: _Level, finished: bool) -> None:
        self.busy, now = True, time.monotonic()
        own = level.own(now)
        self.levels.pop()
        if self.levels:
            self.levels[-1].resumed = now
            self._arm(now)
        elif self.timed:
            self._restore(now)
        self.busy = False
        if finished and own > self.budget.step_seconds:  # no timer here (another thread): checked after
            self.levels.append(level)
            error = self.over("step")
            self.levels.pop()
            raise error

    def _restore(self, now: float) -> None:
        handler, due, interval = self.previous
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL if handler is None else handler)
        if due is not None:
            signal.setitimer(signal.ITIMER_REAL, max(due - now, 1e-6), interval)
        self.timed = False

    def _arm(self, now: float, soon: float | None = None) -> None:
        """The alarm at the next moment something is due: the step's limit or report, the deadline,
        an outer timer (or ``soon`` seconds from now)."""
        if not self.timed:
            return
        if soon is None:
            level = self.levels[-1]
            wake = [now + self.budget.step_seconds - level.own(now), now + level.reported - level.own(now)]
            soon = min(wake + [t for t in (self.budget.deadline, self.previous[1]) if t is not None]) - now
        signal.setitimer(signal.ITIMER_REAL, max(soon, 1e-3))

    def _alarm(self, signum: int, frame) -> None:
        now = time.monotonic()
        if self.busy or not self.levels:
            self._arm(now, soon=0.01)
            return
        handler, due, interval = self.previous
        if due is not None and now >= due:  # an outer timer (the fuzzer's, pytest-timeout's) is due
            self.previous = (handler, now + interval if interval else None, interval)
            if callable(handler):
                self._arm(now)
                handler(signum, frame)
        level = self.levels[-1]
        if self.budget.deadline is not None and now >= self.budget.deadline:
            self._arm(now, soon=1.0)  # again, should anything swallow it
            raise _Expired("total")
        if level.own(now) >= self.budget.step_seconds:
            self._arm(now, soon=1.0)
            raise _Expired("step")
        if level.own(now) >= level.reported and self.report is not None:
            level.reported += REPORT_EVERY
            name = f"{self.subject[0]}: " if self.subject else ""
            self.report(f"{name}{self.path()} ({level.own(now):.0f} s)")
        self._arm(now)


_local = threading.local()


def _run() -> _Run:
    """The run of this thread: the one ``limits`` started, else one with the environment's limits."""
    run = getattr(_local, "run", None)
    if run is None:
        run = _local.run = _Run(replace(Budget.from_environment(), deadline=None), implicit=True)
    return run


@contextlib.contextmanager
def limits(budget: Budget | None = None, report: Report | None = None) -> Iterator[Budget]:
    """Hold what runs inside to ``budget``, its clock starting now unless it has a deadline (a
    worker's); None: the limits already held (the command line's), else the environment's.
    ``report`` gets the lines saying a step runs long."""
    outer = getattr(_local, "run", None)
    if budget is None and outer is not None and not outer.implicit:
        yield outer.budget
        return
    budget = budget or Budget.from_environment()
    if budget.deadline is None:
        budget = replace(budget, deadline=time.monotonic() + budget.total_seconds)
    _local.run = _Run(budget, report)
    try:
        yield budget
    finally:
        _local.run = outer


class step:
    """``with step("simplifying the vjp of x", model):`` one stage of the pipeline, held to the step
    budget (its own time: steps inside it have theirs); ``OverBudget`` when over, naming ``model``
    (anything with a ``name`` and a ``source``; default: the model of the step it is in)."""

    def __init__(self, what: str, model: object | None = None) -> None:
        self.what, self.model = what, model

    def __enter__(self) -> None:
        self.run = _run()
        self.outer = self.run.subject
        if self.model is not None:
            self.run.subject = (str(getattr(self.model, "name", "")), str(getattr(self.model, "source", "")))
        try:
            self.level = self.run.enter(self.what)
        except OverBudget:
            self.run.subject = self.outer
            raise

    def __exit__(self, kind, error, traceback) -> None:
        over = self.run.over(str(error)) if isinstance(error, _Expired) else None
        try:
            self.run.leave(self.level, finished=kind is None)
        finally:
            self.run.subject = self.outer
        if over is not None:
            raise over from None


def report(message: str) -> None:
    """Tell the run's ``report`` callback (the progress lines), if it has one."""
    run = _run()
    if run.report is not None:
        run.report(message)


def stepped(what: str, function: Callable[..., T], *args: object) -> T:
    """``function(*args)`` as one step."""
    with step(what):
        return function(*args)


def check_size(what: str, *exprs: sp.Basic) -> None:
    """``OverBudget`` when an expression of ``exprs`` (what the step made) is over the size budget."""
    run = _run()
    largest = max((tree_size(e) for e in exprs if isinstance(e, sp.Basic)), default=0)
    if largest > run.budget.max_size:
        raise run.over("size", f"{what} of {largest:,} nodes")


def tree_size(expr: sp.Basic) -> int:
    """Nodes of ``expr`` as a tree (a shared part counted each time it occurs), in time linear in
    its distinct parts."""
    sizes: dict[sp.Basic, int] = {}
    stack = [expr]
    while stack:
        node = stack[-1]
        waiting = [a for a in node.args if a not in sizes]
        if waiting:
            stack.extend(waiting)
            continue
        stack.pop()
        sizes[node] = 1 + sum(sizes[a] for a in node.args)
    return sizes[expr]
