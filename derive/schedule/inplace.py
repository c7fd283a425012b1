"""Lower a scheduled kernel into steps that update full-size arrays in place (``t *= s``, ``t -= u``).

A NumPy expression allocates a fresh full-size array for every operation; writing into an array
the kernel already owns is about twice as fast and holds less memory.  Only arrays computed from
the seed (a vjp's cotangent), or allocated like it (``out=np.empty_like(dy)``), are written into:
they have the output's full shape and dtype, so any operand spanning a subset of their axes fits.
Reductions inside a full-size expression are computed first, into their own (per-row) temporaries,
and the terms spanning fewer axes are added up before they meet the full-size array; a temporary
whose last use is the expression becomes its buffer; a dead one is reused through ``out=`` for the
next full-size array (and an elementwise function of a dead array overwrites it).

A forward and the terms of a jvp name no cotangent: there the seed is the output itself, which no
expression mentions, and each result is built in a new array shaped like it (``seed_spans``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import sympy as sp

from ..calculus.indices import free_indices
from .cse import Scheduled, as_array
from .factoring import group_shared_factors, pull_common_factors

ELEMENTWISE = (sp.exp, sp.log, sp.sin, sp.cos, sp.tan, sp.sinh, sp.cosh, sp.tanh, sp.erf)
"""Functions printed as one NumPy ufunc call of their argument, so ``out=`` can be added."""


@dataclass(frozen=True)
class Step:
    """``symbol op expr``: an assignment (``=``, into the dead array ``out`` when given) or an
    in-place update (``+=``, ``-=``, ``*=``, ``/=``)."""

    symbol: sp.Symbol
    expr: sp.Expr
    op: str = "="
    out: str | None = None


@dataclass(frozen=True)
class Lowered:
    prelude: tuple[Step, ...]
    own: dict[str, tuple[Step, ...]]
    results: dict[str, sp.Expr]
    scales: dict[str, sp.Expr] = field(default_factory=dict)
    """Per-row factors of results, left to the runtime: when the batch axes are summed away it
    contracts them with the factor (a matrix-vector product) instead of multiplying first."""
    owned: frozenset[str] = frozenset()
    """Outputs whose result is an array this call built and nothing reads afterwards: the runtime
    may add other terms into it."""


def in_place(plan: Scheduled, seed: str, owned_inputs: tuple[str, ...] = (),
             guarded: frozenset[str] = frozenset(), like_seed: str | None = None,
             seed_spans: frozenset | None = None) -> Lowered:
    """The schedule with full-size expressions that depend on ``seed`` updated in place.

    ``owned_inputs`` are inputs the kernel has already copied (shifted for stability): an
    elementwise function may overwrite them once they are no longer needed.  ``guarded`` names
    the outputs computed only when an optional input is given (their arrays exist only there).
    ``like_seed`` is code for a new array with the shape and dtype of ``seed`` on the frame
    (``np.empty_like(dy)``), or None where there is none.  ``seed_spans`` (the axes of ``seed``)
    names a seed that no expression mentions, the output a forward computes: its results are
    then built in a new array like it, and the temporaries they own are allocated like it.
    """
    return _Lowering(plan, seed, owned_inputs, guarded, like_seed, seed_spans).run()


def _writable(expr: sp.Expr) -> bool:
    """Can ``expr`` be computed into an existing array (``print_into``: its last operation as a ufunc)?"""
    return isinstance(expr, (sp.Add, sp.Mul, *ELEMENTWISE))


def _names(expr: sp.Expr) -> set[str]:
    return {str(b.label) for b in expr.atoms(sp.IndexedBase)} | {str(s) for s in expr.atoms(sp.Symbol)}


def _mentions(expr: sp.Expr, name: str) -> int:
    """How often an array appears in ``expr`` (as ``t[i]`` or, if per-row, as ``t``)."""
    nodes = list(sp.preorder_traversal(expr))
    indexed = sum(1 for n in nodes if isinstance(n, sp.Indexed) and str(n.base.label) == name)
    return indexed or sum(1 for n in nodes if isinstance(n, sp.Symbol) and str(n) == name)


def _bare(expr: sp.Expr) -> bool:
    return isinstance(expr, (sp.Indexed, sp.Symbol)) or expr.is_Number


def _top_sums(expr: sp.Expr) -> list[sp.Sum]:
    """Reductions not nested in another reduction, in a fixed order."""
    found: list[sp.Sum] = []

    def walk(node: sp.Basic) -> None:
        if isinstance(node, sp.Sum):
            found.append(node)
        else:
            for arg in node.args:
                walk(arg)

    walk(expr)
    return list(dict.fromkeys(found))


class _Lowering:
    def __init__(self, plan: Scheduled, seed: str, owned_inputs: tuple[str, ...], guarded: frozenset[str],
                 like_seed: str | None, seed_spans: frozenset | None = None) -> None:
        self.items: list[list] = [[None, s, e] for s, e in plan.prelude]
        for name, own in plan.own.items():
            self.items += [[name, s, e] for s, e in own] + [[name, None, plan.results[name]]]
        self.guarded, self.like_seed = guarded, like_seed
        seeds = [n for _, _, e in self.items for n in e.atoms(sp.Indexed) if str(n.base.label) == seed]
        self.seed_spans = seed_spans if seed_spans is not None else free_indices(seeds[0]) if seeds else None
        self.result_like = seed_spans is not None and like_seed is not None
        self.free_start = False
        """True while lowering a result that starts in a new array like the seed (a forward's, a jvp term's)."""
        taken = [int(str(s)[1:]) for _, s, _ in self.items if s is not None and str(s)[1:].isdigit()]
        self.count = max(taken, default=-1) + 1  # CSE may leave gaps: fresh names start past them
        self.seeded = {seed}
        self.block_of: dict[str, str | None] = {name: None for name in owned_inputs}
        self.buffers: dict[str, frozenset | None] = {name: None for name in owned_inputs}
        """Arrays this kernel allocated (their axes; None: an owned input, for functions only)."""
        self.last_use: dict[str, int] = {}
        self.dead: set[str] = set()
        self.named_operands: set[str] = set()
        self.planned: list[Step] = []
        """Steps of the item being lowered, planned but not yet emitted: their arrays are held."""
        self.position = 0
        self.steps: dict[str | None, list[Step]] = {None: [], **{name: [] for name in plan.own}}
        self.results: dict[str, sp.Expr] = {}
        self.scales: dict[str, sp.Expr] = {}
        self.owned: set[str] = set()

    def run(self) -> Lowered:
        for position in range(len(self.items)):
            self.position, self.planned = position, []
            self.lower(position)
        steps = {block: self.merge_unused_operands(s) for block, s in self.steps.items()}
        return _renumber(Lowered(tuple(steps[None]), {n: tuple(s) for n, s in steps.items() if n is not None},
                                 self.results, self.scales, frozenset(self.owned)))

    # -- bookkeeping --------------------------------------------------------------------------
    def depends(self, expr: sp.Expr) -> bool:
        return bool(_names(expr) & self.seeded)

    def fresh(self) -> sp.Symbol:
        self.count += 1
        return sp.Symbol(f"t{self.count - 1}")

    def emit(self, block: str | None, step: Step) -> None:
        self.steps[block].append(step)
        name = str(step.symbol)
        self.block_of.setdefault(name, block if block in self.guarded else None)
        for used in _names(step.expr) | {name}:
            self.last_use[used] = self.position
        if self.depends(step.expr):
            self.seeded.add(name)
        spans = free_indices(step.expr)
        if step.op == "=" and spans and not _bare(step.expr):
            self.buffers.setdefault(name, frozenset(spans))
        if step.out:
            self.dead.add(step.out)

    def plan(self, step: Step) -> Step:
        """Record a step of the current item before it is emitted (its arrays are then held)."""
        self.planned.append(step)
        return step

    def held(self, name: str) -> bool:
        """Does a planned, not yet emitted step read or write ``name`` (as its target or ``out=``)?"""
        return any(name in _names(s.expr) or name in (str(s.symbol), s.out) for s in self.planned)

    def alive_after(self, name: str, position: int) -> bool:
        """Needed by a later item, or returned (a result may be the array itself)."""
        later = any(_mentions(e, name) for _, _, e in self.items[position + 1:])
        return later or any(_mentions(r, name) for r in self.results.values())

    def reusable(self, term: sp.Expr, position: int, spans: set, commit: bool = False) -> sp.Symbol | None:
        """The temporary ``term`` if its buffer may become this expression's: last use, full span.

        An array not computed from the cotangent qualifies if its assignment can allocate it with
        the cotangent's shape and dtype instead (done when ``commit``).
        """
        if not isinstance(term, sp.Indexed) or free_indices(term) != spans:
            return None
        name, block = str(term.base.label), self.items[position][0]
        if self.buffers.get(name) is None or self.block_of[name] not in (None, block):
            return None
        if name not in self.seeded and (spans != self.seed_spans or self.assignment(name) is None):
            return None
        item = self.items[position][2]  # its reductions are computed first, before the buffer is written
        once = _mentions(item.xreplace({r: sp.Dummy() for r in _top_sums(item)}), name) == 1
        if not once or name in self.dead or self.held(name) or self.alive_after(name, position):
            return None
        if commit and name not in self.seeded:
            steps, index = self.assignment(name) or ([], -1)  # found above: not None
            steps[index] = replace(steps[index], out=self.like_seed)
            self.seeded.add(name)
        return sp.Symbol(name)

    def assignment(self, name: str) -> tuple[list[Step], int] | None:
        """Where ``name`` is assigned, if it could be computed into a new array like the cotangent."""
        if self.like_seed is None:
            return None
        for steps in self.steps.values():
            for index, step in enumerate(steps):
                if str(step.symbol) == name and step.op == "=":
                    fits = step.out is None and _writable(step.expr)
                    return (steps, index) if fits else None
        return None

    def dead_buffer(self, expr: sp.Expr, spans: set) -> str | None:
        """A buffer no longer needed that ``expr`` can be computed into (``out=``)."""
        position, block = self.position, self.items[self.position][0]
        if isinstance(expr, ELEMENTWISE) and _bare(expr.args[0]) and not expr.args[0].is_Number:
            arg = expr.args[0]
            name = str(arg.base.label if isinstance(arg, sp.Indexed) else arg)
            fits = name in self.buffers and name not in self.dead and self.last_use.get(name, -1) < position \
                and not self.held(name) and (name in self.seeded or not self.free_start)
            # a result started here grows to the output's shape: only an array of that shape may hold it
            if fits and _mentions(self.items[position][2], name) == 1 and not self.alive_after(name, position):
                return name
            return None
        if not isinstance(expr, (sp.Add, sp.Mul)) or not self.depends(expr) or free_indices(expr) != spans:
            return None
        for name, axes in self.buffers.items():
            if axes != frozenset(spans) or name in self.dead or name not in self.seeded:
                continue
            if self.block_of[name] in (None, block) and self.last_use.get(name, -1) < position and not self.held(name) \
                    and not _mentions(self.items[position][2], name) and not self.alive_after(name, position):
                return name
        return None

    def allocate(self, target: sp.Symbol, expr: sp.Expr, spans: set) -> Step:
        """``target = expr``, computed into a dead buffer when one fits (or, starting a forward's
        result, into a new array like the seed)."""
        out = self.dead_buffer(expr, spans)
        if out is None and self.free_start and _writable(expr):
            out = self.like_seed
        return self.plan(Step(target, expr, out=out))

    def startable(self, expr: sp.Expr) -> bool:
        """May ``expr`` start a buffer: computed from the seed, or a result started in a new array
        like it (which needs an operation that can write into it)."""
        return self.depends(expr) or self.free_start and _writable(expr)

    def ownable(self, expr: sp.Expr, position: int, spans: set) -> bool:
        """Does a term or factor of ``expr`` hold a temporary that may become its buffer?"""
        parts = [f for t in sp.Add.make_args(expr) for f in (t, *sp.Mul.make_args(t))]
        return any(self.reusable(p, position, spans) for p in parts)

    def operand(self, expr: sp.Expr, spans: set) -> tuple[list[Step], sp.Expr]:
        """A full-size operand of an update gets a name, so that a later step may reuse its array."""
        if free_indices(expr) != spans or _bare(expr) or not self.depends(expr):
            return [], expr
        name = self.fresh()
        self.named_operands.add(str(name))
        return [self.allocate(name, expr, spans)], as_array(name, expr)

    def merge_unused_operands(self, steps: list[Step]) -> list[Step]:
        """Put back the operands whose array no later step reused (they would only hold memory)."""
        merged: list[Step] = []
        for step in steps:
            previous = merged[-1] if merged else None
            if previous is not None and str(previous.symbol) in self.named_operands \
                    and previous.out is None and str(previous.symbol) not in self.dead:
                folded = {as_array(previous.symbol, previous.expr): previous.expr}
                merged[-1] = replace(step, expr=step.expr.xreplace(folded))
            else:
                merged.append(step)
        return merged

    # -- lowering -----------------------------------------------------------------------------
    def name_squared_bases(self, block: str | None, expr: sp.Expr) -> sp.Expr:
        """Sum((x - m)**2) -> t = x - m; Sum(t**2): the einsum reads t twice, nothing is squared."""
        for reduction in _top_sums(expr):
            base, exponent = reduction.function.as_base_exp()
            if exponent == 2 and not _bare(base) and free_indices(base):
                name = self.fresh()
                self.emit(block, self.allocate(name, base, free_indices(base)))
                expr = expr.xreplace({base: as_array(name, base)})
        return expr

    def lower(self, position: int) -> None:
        block, symbol, expr = self.items[position]
        expr = self.items[position][2] = self.name_squared_bases(block, expr)
        spans = free_indices(expr)
        self.free_start = self.result_like and symbol is None and spans == self.seed_spans
        if (spans and isinstance(expr, (sp.Add, sp.Mul))
                and (self.startable(expr) or self.ownable(expr, position, spans))):
            for reduction in _top_sums(expr):
                name = self.fresh()
                self.emit(block, Step(name, reduction))
                expr = expr.xreplace({reduction: as_array(name, reduction)})
            expr = expr.replace(lambda e: isinstance(e, sp.Add), pull_common_factors)
            expr = expr.replace(lambda e: isinstance(e, sp.Add), group_shared_factors)
            self.items[position][2] = expr
            target = symbol if symbol is not None else self.fresh()
            buffer, steps = self.build(expr, position, target, spans) or (target, [self.allocate(target, expr, spans)])
        elif symbol is not None:
            buffer, steps = symbol, [self.allocate(symbol, expr, spans)]
        else:
            buffer, steps = None, []
        if self.free_start and len(steps) == 1 and steps[0].out == self.like_seed:
            steps = [replace(steps[0], out=None)]  # one operation: NumPy reuses its own temporaries
        last = steps[-1] if steps else None
        scaled = symbol is None and block in self.guarded and last and last.op == "*=" \
            and not free_indices(last.expr) and not self.result_like
        if scaled:  # a vjp's parameter gradient (a jvp's terms are not summed over rows)
            self.scales[block] = steps.pop().expr
        for step in steps:
            self.emit(block, step)
        if symbol is not None and buffer != symbol:
            renamed = {sp.Symbol(str(symbol)): buffer, sp.IndexedBase(str(symbol)): sp.IndexedBase(str(buffer))}
            for item in self.items[position + 1:]:
                item[2] = item[2].xreplace(renamed)
        if symbol is None:
            # the buffer, also when its last step became the scale (never the expression: scaled twice)
            self.results[block] = as_array(buffer, expr) if steps or scaled else expr
            if buffer is not None:
                self.owned.add(block)

    def build(self, expr: sp.Expr, position: int, target: sp.Symbol, spans: set):
        """(buffer, steps) leaving ``expr`` in a buffer this kernel owns, or None for one plain step."""
        owned = self.reusable(expr, position, spans, commit=True)
        if owned is not None:
            return owned, []
        if isinstance(expr, sp.Add):
            return self.build_sum(expr, position, target, spans)
        if isinstance(expr, sp.Mul):
            return self.build_product(expr, position, target, spans)
        return None

    def update(self, steps: list[Step], buffer: sp.Symbol, op: str, operand: sp.Expr, spans: set) -> None:
        named, operand = self.operand(operand, spans)
        steps += [*named, self.plan(Step(buffer, operand, op))]

    def build_sum(self, expr: sp.Add, position: int, target: sp.Symbol, spans: set):
        terms = list(expr.args)
        owns = [t for t in terms if any(self.reusable(f, position, spans) for f in sp.Mul.make_args(t))]
        fits = [t for t in terms if free_indices(t) == spans and self.startable(t) and not _bare(t)]
        start = next(iter(owns + fits), None)
        if start is None:
            return None
        terms.remove(start)
        buffer, steps = self.build(start, position, target, spans) or (target, [self.allocate(target, start, spans)])
        small = sp.Add(*(t for t in terms if free_indices(t) != spans))
        for term in [t for t in terms if free_indices(t) == spans] + ([small] if small != 0 else []):
            negative = term.could_extract_minus_sign()
            self.update(steps, buffer, "-=" if negative else "+=", -term if negative else term, spans)
        return buffer, steps

    def build_product(self, expr: sp.Mul, position: int, target: sp.Symbol, spans: set):
        factors = list(sp.Mul.make_args(expr))
        small = [f for f in factors if free_indices(f) != spans]
        large = [f for f in factors if free_indices(f) == spans]
        owned = next((f for f in large if self.reusable(f, position, spans, commit=True)), None)
        sums = [f for f in large if isinstance(f, sp.Add) and self.startable(f)]
        if owned is not None:
            buffer, steps = sp.Symbol(str(owned.base.label)), []
            large.remove(owned)
        elif sums:
            large.remove(sums[0])
            built = self.build(sums[0], position, target, spans)
            buffer, steps = built or (target, [self.allocate(target, sums[0], spans)])
        else:
            numerators = sorted((f for f in large if f.as_base_exp()[1] != -1), key=lambda f: not self.depends(f))
            start = numerators[:2] if len(numerators) >= 2 else numerators + small
            if len(numerators) < 1 or not self.startable(sp.Mul(*start)) or _bare(sp.Mul(*start)):
                return None  # a bare start would be an input itself (``t = dy; t /= b`` writes into dy)
            for factor in start:
                (large if factor in large else small).remove(factor)
            buffer, steps = target, [self.allocate(target, sp.Mul(*start), spans)]
        for factor in large:
            base, exponent = factor.as_base_exp()
            self.update(steps, buffer, "/=" if exponent == -1 else "*=", base if exponent == -1 else factor, spans)
        if small:
            steps.append(self.plan(Step(buffer, sp.Mul(*small), "*=")))
        return buffer, steps


def _renumber(lowered: Lowered) -> Lowered:
    """Name the temporaries t0, t1, ... in the order they are first assigned (no gaps)."""
    order: list[str] = []
    for step in (*lowered.prelude, *(s for own in lowered.own.values() for s in own)):
        if step.op == "=" and str(step.symbol) not in order:
            order.append(str(step.symbol))
    names = {old: f"t{position}" for position, old in enumerate(order)}
    mapping = {}
    for old, new in names.items():
        mapping[sp.Symbol(old)] = sp.Symbol(new)
        mapping[sp.IndexedBase(old)] = sp.IndexedBase(new)

    def renamed(s: Step) -> Step:
        out = names.get(s.out, s.out) if s.out is not None else None
        return Step(mapping.get(s.symbol, s.symbol), s.expr.xreplace(mapping), s.op, out)

    return Lowered(tuple(renamed(s) for s in lowered.prelude),
                   {name: tuple(renamed(s) for s in own) for name, own in lowered.own.items()},
                   {name: r.xreplace(mapping) for name, r in lowered.results.items()},
                   {name: f.xreplace(mapping) for name, f in lowered.scales.items()}, lowered.owned)
