"""Print a ``LoopPlan`` as the body of one ``numba.njit(nogil=True)`` function: the units of part ``p_``.

Arrays reach the compiled function as ``(rows, *frame)``: one leading row axis (the flattened batch,
of length 1 for an input without batch axes) and every core axis of the frame (length 1 where the
array does not span it).  The units are split into ``P_`` parts, one call each; the runtime runs a
chunk's consecutive parts on one thread and the chunks side by side without the GIL, and a result
that units add into has one slot per chunk (``c_``); a unit is one row and one position
of each unit axis.  Per unit: each level of reductions is one loop nest (reductions over the same
axes share it), accumulated in float64 (a sum along one axis in blocks of 256 entries, each summed in
the arrays' type); then one loop nest per result writes every result entry.
Scalar code is printed with ``math`` functions; expressions inside a loop body share their common
subexpressions (``sympy.cse``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from ...errors import LoweringError
from ...model import dim_of
from ..kernel.functions import axis_variable
from .loops import Kept, LoopPlan, Reduction, Result, kept, names_in


class LoopPrinter(PythonCodePrinter):
    """Scalar Python (numba) code for one entry; arrays are read at the unit's row and loop indices."""

    def __init__(self, frame: tuple[sp.Expr, ...], arrays: dict[str, tuple[sp.Expr, ...]],
                 names: dict[sp.Symbol, str]) -> None:
        super().__init__({"fully_qualified_modules": True, "allow_unknown_functions": False})
        self.frame, self.arrays, self.names = frame, arrays, names
        self.scratch: set[str] = set()

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        if expr.name in self.arrays:  # an array without core axes (a scalar output's cotangent)
            return self.read(expr.name, ())
        return self.names.get(expr, expr.name)

    def _print_Idx(self, expr: sp.Idx) -> str:
        return str(expr.label)

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        name = str(expr.base)
        indices = tuple(self._print(i) for i in expr.indices)
        if name in self.scratch:
            return f"{name}[{', '.join(indices)}]"
        if name not in self.arrays:
            raise LoweringError(f"{name} is not an input of this kernel")
        dims = self.arrays[name]
        if len(dims) != len(indices):
            raise LoweringError(f"{expr} indexes {name} (sizes {dims}) with {len(indices)} indices")
        return self.read(name, tuple(zip(dims, indices)))

    def read(self, name: str, placed: tuple) -> str:
        slots = dict(placed)
        index = [slots.get(d, "0") for d in self.frame]
        return f"{name}[{', '.join([f'{name}_r', *index])}]"

    def _print_not_supported(self, expr: sp.Basic) -> str:
        if hasattr(expr, "as_elementary") and expr.as_elementary() != expr:  # parenthesised: printed
            return f"({self._print(expr.as_elementary())})"  # where the call was (f(t)**2, 1/f(t))
        raise LoweringError(f"{getattr(expr, 'func', type(expr)).__name__} in {expr} has no numba form")

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        if expr.exp == -1:
            return f"1/{self.parenthesize(expr.base, sp.printing.precedence.PRECEDENCE['Pow'])}"
        if expr.exp.is_Integer and expr.exp < 0:  # numba's int ** negative int is an int: 1/n**2, not n**(-2)
            return f"(1/{self._print_Pow(sp.Pow(expr.base, -expr.exp, evaluate=False))})"
        if expr.exp == 2:
            base = self.parenthesize(expr.base, sp.printing.precedence.PRECEDENCE["Mul"])
            return f"({base}*{base})" if base.isidentifier() else super()._print_Pow(expr, rational)
        return super()._print_Pow(expr, rational=rational)

    def _print_exp(self, expr: sp.Function) -> str:
        return f"_exp({self._print(expr.args[0])})"  # the runtime's exp, which LLVM vectorises

    def _print_sigmoid(self, expr: sp.Function) -> str:
        return f"_sigmoid({self._print(expr.args[0])})"

    def _print_softplus(self, expr: sp.Function) -> str:
        return f"_softplus({self._print(expr.args[0])})"

    def _indicator(self, left: sp.Expr, op: str, right: sp.Expr) -> str:
        return f"(1.0 if {self._print(left)} {op} {self._print(right)} else 0.0)"

    def _print_attains(self, expr: sp.Function) -> str:
        return self._indicator(expr.args[0], "==", expr.args[1])

    def _print_KroneckerDelta(self, expr: sp.KroneckerDelta) -> str:
        return self._indicator(expr.args[0], "==", expr.args[1])

    def _print_at_most(self, expr: sp.Function) -> str:
        return self._indicator(expr.args[0], "<=", expr.args[1])

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        *branches, (last, condition) = expr.args
        if condition != sp.true:
            raise LoweringError(f"{expr} has no otherwise-branch")
        code = self._print(last)
        for value, condition in reversed(branches):
            code = f"({self._print(value)} if {self._print(condition)} else {code})"
        return code

    def _print_Min(self, expr: sp.Min) -> str:
        return self._fold("min", expr.args)

    def _print_Max(self, expr: sp.Max) -> str:
        return self._fold("max", expr.args)

    def _fold(self, function: str, args) -> str:
        code = self._print(args[0])
        for arg in args[1:]:
            code = f"{function}({code}, {self._print(arg)})"
        return code


class Emitter:
    """Lines of one compiled function, built by nesting loops."""

    def __init__(self, plan: LoopPlan, printer: LoopPrinter, sizes: dict[sp.Expr, str]) -> None:
        self.plan, self.printer, self.sizes = plan, printer, sizes
        self.lines: list[str] = []
        self.setup: list[str] = []
        """Statements run once per call, before the units (scratch arrays)."""
        self.depth = 0
        self.count = 0
        self.owned: dict[object, list[str]] = {}
        """Locals of the last ``values`` that one owner alone reads, by owner, not yet printed."""
        self.rounded: set[sp.Symbol] = set()
        """Staged values rounded to the arrays' type where computed (see ``factors_only``)."""

    def line(self, text: str) -> None:
        self.lines.append("    " * self.depth + text)

    def loops(self, indices, staged: dict | None = None, start: int = 0, flags: dict | None = None) -> int:
        """Open a loop per index; after each, compute the values ``staged`` at that depth."""
        for depth, index in enumerate(indices, start):
            self.line(f"for {index.label} in range({self.sizes[dim_of(index)]}):")
            self.depth += 1
            self.emit_staged(staged, depth, flags)
        return len(indices)

    def emit_staged(self, staged: dict | None, depth: int, flags: dict | None = None) -> None:
        """The values ``staged`` at ``depth``; one that only results under flags read is computed
        under them (``flags``: name -> test), so a skipped pass's scratch row is never read."""
        if staged and staged.get(depth):
            names, exprs = zip(*staged[depth])
            tests = [(flags or {}).get(name) for name in names]
            for name, code, test in zip(names, self.values(list(exprs), tests=tests), tests):
                code = f"{code} if {test} else 0.0" if test else code
                self.line(f"{name} = _as({code}, lo_)" if name in self.rounded else f"{name} = {code}")

    def staged(self, exprs: list[sp.Expr], indices) -> tuple[list[sp.Expr], dict]:
        """``exprs`` with every part that varies only along outer loops (or none) computed once where
        its last index is set (loop-invariant code motion): the innermost body keeps per-entry work.
        Returns the rewritten expressions and depth -> [(name, value)] (-1: before the loops)."""
        order = {index: depth for depth, index in enumerate(indices)}
        innermost = len(indices) - 1
        staged: dict[int, list] = {}
        names: dict[sp.Expr, sp.Symbol] = {}

        def depth(expr: sp.Expr) -> int:
            return max((order[i] for i in expr.atoms(sp.Idx) if i in order), default=-1)

        def named(expr: sp.Expr, level: int) -> sp.Expr:
            if not isinstance(expr, sp.Expr) or expr.is_Atom or isinstance(expr, sp.Indexed):
                return expr  # a condition pair or a condition stays in place (cheap; Piecewise needs it)
            if expr not in names:
                names[expr] = sp.Symbol(f"_h{self.count}")
                self.count += 1
                staged.setdefault(level, []).append((names[expr], expr))
            return names[expr]

        def visit(expr: sp.Expr) -> sp.Expr:
            level = depth(expr)
            if level < innermost:
                return named(expr, level)
            if isinstance(expr, sp.Indexed) or not expr.args:
                return expr
            if isinstance(expr, (sp.Add, sp.Mul)):
                fixed = [a for a in expr.args if depth(a) < innermost]
                moving = [visit(a) for a in expr.args if depth(a) >= innermost]
                outer = [named(expr.func(*fixed), max(depth(a) for a in fixed))] if fixed else []
                return expr.func(*outer, *moving)
            return expr.func(*(visit(a) for a in expr.args))

        return [visit(e) for e in exprs], staged

    def values(self, exprs: list[sp.Expr], owners: list | None = None,
               flags: list[str | None] | None = None, tests: list[str | None] | None = None) -> list[str]:
        """Print ``exprs`` for one loop body: shared subexpressions first, as locals.  With
        ``owners`` (one per expression), a local only one owner's expressions use is not printed
        here but kept in ``self.owned[owner]``, for the owner's own block; a local only one
        expression reads, when ``flags`` gives that expression a flag, is computed under it (0.0
        where it fails, as the expression is).  ``tests`` (one per expression: when it is computed
        at all) puts a local left in the shared part under the tests of all its readers."""
        start = self.count
        pairs, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("_e", start=start), order="none")
        self.count += len(pairs)
        place = _owner_of(pairs, reduced, owners) if owners else {}
        guarded = (flags and any(flags)) or (tests and any(tests))
        readers = _readers(pairs, reduced, list(range(len(reduced)))) if guarded else {}
        self.owned = {}
        for symbol, value in pairs:
            code = self.printer.doprint(value)
            found = sorted(readers.get(symbol, ()))
            shared = tests is not None and place.get(symbol) is None
            flag = _any_of([tests[i] for i in found]) if tests is not None and shared else \
                (flags[found[0]] if flags and len(found) == 1 else None)
            line = f"{symbol} = ({code} if {flag} else 0.0)" if flag and isinstance(value, sp.Expr) else \
                f"{symbol} = {code}"
            if place.get(symbol) is None:
                self.line(line)
            else:
                self.owned.setdefault(place[symbol], []).append(line)
        return [self.printer.doprint(r) for r in reduced]

    def reductions(self, group: list[Reduction], keep: Sequence[Kept] = ()) -> None:
        """One loop nest computing ``group`` (and storing the values ``keep`` for the result pass).
        The reductions share the nest's indices: a sum over all of them is one value; one kept at
        each position of the outer ones (a per-channel sum inside a group) starts where its last
        such loop opens and is stored where it closes."""
        nest = _nest(group[0], self.plan.frame)
        for r in group:
            if r.free:
                self.printer.scratch.add(r.name)
                shape = ", ".join(self.sizes[dim_of(i)] for i in r.free)
                self.line(f"{r.name} = np.empty(({shape},))")
            else:
                self.line(f"{r.name} = {_start(r)}")
        opened = 0
        guards = [r.guard for r in group]
        guard = None if None in guards else " or ".join(sorted({g for r in group for g in r.guards}))
        if guard:
            self.line(f"if {guard}:")
            self.depth += 1
            opened += 1
        masks = [r.mask if r.mask is not None else sp.true for r in group]
        exprs, staged = self.staged([r.body for r in group] + masks + [k.expr for k in keep], nest)
        self.emit_staged(staged, -1)
        if _in_lanes(group):
            self.lanes(group, nest[0], exprs, keep)
            self.depth -= opened
            return
        if _in_blocks(group, nest):
            self.blocks(group, nest[0], exprs, keep, staged)
            self.depth -= opened
            return
        base = self.depth
        for depth, index in enumerate(nest):
            self.loops([index], staged, depth)
            for r in group:
                if len(r.free) == depth + 1:
                    self.line(f"{r.name}_a = {_start(r)}")
        codes = self.values(exprs)
        self.stores(keep, codes[2 * len(group):])
        self.accumulate(group, codes, codes[len(group):], lambda r: f"{r.name}_a" if r.free else r.name)
        for depth in reversed(range(len(nest))):
            self.depth = base + depth + 1
            for r in group:
                if len(r.free) == depth + 1:
                    self.line(f"{r.name}[{', '.join(str(i.label) for i in r.free)}] = {r.name}_a")
        self.depth = base - opened

    def lanes(self, group: list[Reduction], index: sp.Idx, exprs: list[sp.Expr], keep: Sequence[Kept]) -> None:
        """A pass with a maximum along ``index``, each reduction kept in LANES running values (entry j
        in lane j % LANES), then folded: independent lanes LLVM vectorises, where one running maximum
        is a chain of compare-and-selects it does not (no fast-math ``nnan``), nor the sums beside it."""
        size, label = self.sizes[dim_of(index)], index.label
        bodies = exprs[:len(group)] + exprs[2 * len(group):]
        for r in group:
            start = f"np.full({LANES}, lo_)" if r.kind == "max" else f"np.zeros({LANES})"
            self.setup.append(f"{r.name}_l = {start}")
            self.line(f"{r.name}_l[:] = {_start(r)}")
        self.line(f"for b_ in range(0, {size} - {size} % {LANES}, {LANES}):")
        self.line(f"    for l_ in range({LANES}):")
        self.depth += 2
        self.line(f"{label} = b_ + l_")
        self.updates(group, keep, self.values(bodies), "{}_l[l_]")
        self.depth -= 2
        self.line(f"for {label} in range({size} - {size} % {LANES}, {size}):")
        self.depth += 1
        self.updates(group, keep, self.values(bodies), "{}")
        self.depth -= 1
        self.line(f"for l_ in range({LANES}):")
        self.depth += 1
        self.updates(group, (), [f"{r.name}_l[l_]" for r in group], "{}")
        self.depth -= 1

    def blocks(self, group: list[Reduction], index: sp.Idx, exprs: list[sp.Expr], keep: Sequence[Kept],
               staged: dict) -> None:
        """Sums along ``index`` in blocks of BLOCK entries (then the entries left over), each block's
        sum run in the arrays' type (float32 lanes LLVM vectorises, where float32 entries added into
        float64 are converted one by one at half the width) and added into the float64 total: cascade
        summation, as a hand-written kernel does it.  A block's loop has a constant count (one bounded
        by ``min`` is not vectorised)."""
        size, label = self.sizes[dim_of(index)], index.label
        self.line(f"for b_ in range(0, {size} - {size} % {BLOCK}, {BLOCK}):")
        self.depth += 1
        self.block(group, exprs, keep, staged, f"for l_ in range({BLOCK}):", f"{label} = b_ + l_")
        self.depth -= 1
        self.block(group, exprs, keep, staged, f"for {label} in range({size} - {size} % {BLOCK}, {size}):", None)

    def block(self, group: list[Reduction], exprs: list[sp.Expr], keep: Sequence[Kept], staged: dict,
              loop: str, position: str | None) -> None:
        """One block of ``blocks``: its sums started in the arrays' type, its loop, their totals taking them."""
        for r in group:
            self.line(f"{r.name}_b = _as(0.0, lo_)")
        self.line(loop)
        self.depth += 1
        if position:
            self.line(position)
        self.emit_staged(staged, 0)
        codes = self.values(exprs)
        self.stores(keep, codes[2 * len(group):])
        self.accumulate(group, codes, codes[len(group):], lambda r: f"{r.name}_b")
        self.depth -= 1
        for r in group:
            self.line(f"{r.name} += {r.name}_b")

    def stores(self, keep, codes: list[str]) -> None:
        """Each value ``keep`` written to its scratch row, for the result pass."""
        for k, code in zip(keep, codes):
            self.line(f"{k.name}[{', '.join(str(i.label) for i in k.indices)}] = {code}")

    def updates(self, group: list[Reduction], keep, codes: list[str], target: str) -> None:
        """The reductions of ``group`` (into ``target``: a lane, or the value) take this entry."""
        self.stores(keep, codes[len(group):])
        self.accumulate(group, codes, ["True"] * len(group), lambda r: target.format(r.name))

    def accumulate(self, group: list[Reduction], codes: list[str], masks: list[str],
                   target: Callable[[Reduction], str]) -> None:
        """Each reduction of ``group`` takes its value ``codes[i]`` into ``target(reduction)`` (the
        variable it runs in), under its mask unless that is 'True'."""
        for r, code, mask in zip(group, codes, masks):
            acc = target(r)
            update = f"{acc} += {code}" if r.kind == "sum" else f"{acc} = max({acc}, {code})"
            self.line(update if mask == "True" else f"if {mask}: {update}")

    def results(self, group: list[Result], inner: tuple, keep: Sequence[Kept] = ()) -> None:
        """One loop nest writing ``group``; a flag all of them share is tested once, outside it (a
        store under a test in the loop keeps LLVM from vectorising it).  Values ``keep`` are read
        from the scratch arrays a reduction pass stored them in."""
        indices = _indices(inner)
        stored = {k.expr: sp.IndexedBase(k.name)[k.indices] for k in keep}
        flags = {r.guard for r in group}
        shared = flags.pop() if len(flags) == 1 else None
        if shared:
            self.line(f"if {shared}:")
            self.depth += 1
        exprs, staged = self.staged([t.expr.xreplace(stored) for r in group for t in r.terms], indices)
        tests = {r.name: _flags(r, shared) for r in group}
        readers = _staged_readers(exprs, staged, [_term_test(r, t, tests[r.name]) for r in group for t in r.terms])
        self.rounded = factors_only(exprs, staged)
        self.emit_staged(staged, -1, readers)
        entered = self.loops(indices, staged, flags=readers)
        self.rounded = set()
        own = [r.name if any(tests[r.name]) else None for r in group for _ in r.terms]
        own_flags = [t.guard if _term_flagged(r, t) else None for r in group for t in r.terms]
        term_tests = [_term_test(r, t, tests[r.name]) for r in group for t in r.terms]
        codes = iter(self.values(exprs, own if any(own) else None, own_flags, term_tests))
        for r in group:
            target = self.printer.read(f"out_{r.name}", tuple((d, axis_variable(d)) for d in r.dims))
            target = target.replace(f"out_{r.name}_r", f"out_{r.name}_s")
            value = []
            for term in r.terms:  # a jvp's terms each under its tangent's flag
                code = next(codes)
                value.append(code if term.guard in (None, r.guard) else f"({code} if {term.guard} else 0.0)")
            write = f"{target} {'+=' if r.adds else '='} {' + '.join(value) if value else '0.0'}"
            self.guarded(tests[r.name], [*self.owned.get(r.name, []), write], None if r.adds else f"{target} = 0.0")
        self.owned = {}
        self.depth -= entered + bool(shared)

    def guarded(self, flags: tuple[str | None, str | None], lines: list[str], otherwise: str | None) -> None:
        """``lines`` (the result's own locals, then its write) under the result's flags (see
        ``_flags``); where it is wanted but none of its terms' tangents is given, the entry is
        ``otherwise``."""
        wanted, given = flags
        if len(lines) == 1:  # no locals of its own: the terms' flags are tested where they are added
            self.line(f"if {wanted}: {lines[0]}" if wanted else lines[0])
            return
        if given:
            lines = [f"if {given}:", *(f"    {line}" for line in lines)]
            lines += ["else:", f"    {otherwise}"] if otherwise else []
        if wanted:
            lines = [f"if {wanted}:", *(f"    {line}" for line in lines)]
        for line in lines:
            self.line(line)


def factors_only(exprs: list[sp.Expr], staged: dict) -> set[sp.Symbol]:
    """The staged values that enter the results only as factors of products reached through sums and
    products: rounding one to the arrays' type changes a result by its own rounding (relative 6e-8 in
    float32) and lets the pass compute in that type.  A value added to an entry (a mean subtracted:
    float32 would lose the digits of x - mean), inside a function or a power, or used by another
    staged value stays in float64."""
    names = {name for level in staged.values() for name, _ in level}
    found: set[sp.Symbol] = set()
    other: set[sp.Symbol] = set()
    for level in staged.values():
        for _, value in level:
            other |= value.free_symbols & names

    def visit(expr: sp.Expr, in_product: bool) -> None:
        if expr in names:
            (found if in_product else other).add(expr)
        elif isinstance(expr, (sp.Add, sp.Mul)):
            for arg in expr.args:
                visit(arg, isinstance(expr, sp.Mul))
        else:
            other.update(expr.free_symbols & names)

    for expr in exprs:
        visit(expr, False)
    return found - other


LANES = 16
"""Running values per reduction of a pass with a maximum: 16 float32 (one AVX-512 register, two AVX2)."""
BLOCK = 256
"""Entries a sum adds in the arrays' type before its float64 total takes them (``Emitter.blocks``)."""


def _readers(pairs: list, reduced: list[sp.Expr], owners: list) -> dict[sp.Symbol, set]:
    """For each local of ``sympy.cse``'s ``pairs``, the owners whose expressions (or locals) read it."""
    readers: dict[sp.Symbol, set] = {symbol: set() for symbol, _ in pairs}
    for expr, owner in zip(reduced, owners):
        for symbol in expr.free_symbols & readers.keys():
            readers[symbol].add(owner)
    for symbol, value in reversed(pairs):  # a local read by another takes that one's readers
        for used in value.free_symbols & readers.keys():
            readers[used] |= readers[symbol]
    return readers


def _owner_of(pairs: list, reduced: list[sp.Expr], owners: list) -> dict[sp.Symbol, object]:
    """For each local of ``sympy.cse``'s ``pairs``, the one owner whose expressions (or locals)
    read it, or None when several (or none) do: a local read under one result's flag alone."""
    return {s: next(iter(found)) if len(found) == 1 else None for s, found in _readers(pairs, reduced, owners).items()}


def _any_of(tests: list[str | None]) -> str | None:
    """A test that holds when any of ``tests`` does; None (always) when one of them is None or none is given."""
    if not tests or None in tests:
        return None
    return " or ".join(sorted({t for t in tests if t is not None}))


def _term_test(result: Result, term, flags: tuple[str | None, str | None]) -> str | None:
    """When a term of ``result`` is computed (None: whenever its pass is): the result's own flag, and
    the term's tangent's where it has one of its own."""
    parts = [flags[0] or "", term.guard if _term_flagged(result, term) else ""]
    return " and ".join(dict.fromkeys(p for part in parts for p in part.split(" and ") if p)) or None


def _staged_readers(exprs: list[sp.Expr], staged: dict, tests: list[str | None]) -> dict[sp.Symbol, str]:
    """For each staged value, the test under which some term reads it (only those that have one):
    a value only unwanted results read is not computed, nor the scratch row it reads."""
    names = {name for level in staged.values() for name, _ in level}
    readers: dict[sp.Symbol, list] = {name: [] for name in names}
    for expr, test in zip(exprs, tests):
        for name in expr.free_symbols & names:
            readers[name].append(test)
    return {name: test for name, found in readers.items() if (test := _any_of(found)) is not None}


def _flags(result: Result, shared: str | None) -> tuple[str | None, str | None]:
    """The tests a result's entry is written under: its own flag (wrt=; None when the whole pass
    has it) and, when every term has a tangent's flag of its own, any of those (else None)."""
    wanted = result.guard if result.guard and result.guard != shared else None
    terms = {t.guard for t in result.terms}
    given = None
    if result.terms and None not in terms and result.guard not in terms:
        given = " or ".join(sorted(t for t in terms if t is not None))
    return wanted, given


def _term_flagged(result: Result, term) -> bool:
    """Whether a term's own locals need its flag: it has one, and the block the result is written
    in (see ``_flags``) does not test exactly that one."""
    return term.guard not in (None, result.guard) and len({t.guard for t in result.terms}) > 1


def _in_lanes(group: list[Reduction]) -> bool:
    """Whether ``group`` is a pass along one axis with a maximum, each of array entries (exact in the
    arrays' type, as its lanes are), and nothing masked."""
    return (any(r.kind == "max" for r in group)
            and all(r.mask is None and not r.free and len(r.bound) == 1 for r in group)
            and all(isinstance(r.body, sp.Indexed) for r in group if r.kind == "max"))


def _in_blocks(group: list[Reduction], nest: tuple) -> bool:
    """Whether ``group`` is sums along one axis, each one value (none kept per position)."""
    return len(nest) == 1 and all(r.kind == "sum" and not r.free for r in group)


def _start(reduction: Reduction) -> str:
    """A sum starts at 0.0 (float64); a maximum at ``lo_``, -inf of the arrays' dtype: a maximum is
    exact in any precision, and exp of float32 values minus a float32 maximum runs in float32."""
    return "0.0" if reduction.kind == "sum" else "lo_"


def _nest(reduction: Reduction, frame) -> tuple:
    """The loops of ``reduction``'s pass: its free indices (a value kept per position), then its bound
    ones in the frame's order.  Reductions with the same nest and level share one pass."""
    return (*reduction.free, *sorted(reduction.bound, key=lambda i: frame.index(dim_of(i))))


def _defer_from_maxima(groups: dict) -> None:
    """Move each sum of a pass that takes a maximum into the next pass over the same loops, when
    that pass runs under its flags and nothing before it reads the sum (log_softmax's sum of dy
    beside the maximum, made with the exponentials instead): the maximum's running lanes vectorise
    alone, and the sum joins a loop that already reads its row (log_softmax's vjp at 8192x4096
    float32, 25 ms -> 20-22 ms, as fast as softmax's)."""
    for (level, nest), group in sorted(groups.items(), key=lambda item: item[0][0]):
        if not any(r.kind == "max" for r in group):
            continue
        later = sorted((key for key in groups if key[1] == nest and key[0] > level and
                        not any(r.kind == "max" for r in groups[key])), key=lambda key: key[0])
        if not later:
            continue
        target = later[0]
        for r in [r for r in group if r.kind == "sum"]:
            flags = {g for q in groups[target] for g in q.guards}
            readers = [q for key, found in groups.items() if key[0] <= target[0] for q in found
                       if r.name in names_in(q.body, q.mask)]
            if (None in flags or r.guards <= flags) and not readers:
                group.remove(r)
                groups[target].append(r)
                r.level = target[0]


def body(plan: LoopPlan, printer: LoopPrinter, sizes: dict[sp.Expr, str], arrays: list[str]) -> list[str]:
    """The statements of the compiled function after its signature (indented by one level)."""
    emit = Emitter(plan, printer, sizes)
    emit.depth = 1
    emit.line(f"per_ = {' * '.join(['1', *(sizes[d] for d in plan.units)])}")
    emit.line("units_ = R_ * per_")
    emit.line("if aligned_:  # whole rows per part")
    emit.line("    first_, last_ = (p_ * R_ // P_) * per_, ((p_ + 1) * R_ // P_) * per_")
    emit.line("else:")
    emit.line("    first_, last_ = p_ * units_ // P_, (p_ + 1) * units_ // P_")
    emit.line("for u_ in range(first_, last_):")
    emit.depth = 2
    emit.line("rest_ = u_")
    for d in reversed(plan.units):
        emit.line(f"{axis_variable(d)} = rest_ % {sizes[d]}")
        emit.line(f"rest_ //= {sizes[d]}")
    emit.line("r_ = rest_")
    for name in arrays:
        emit.line(f"{name}_r = min(r_, {name}.shape[0] - 1)")
    for r in plan.results:
        emit.line(f"out_{r.name}_s = c_ if acc_{r.name} else r_" if r.adds else f"out_{r.name}_s = r_")
    groups: dict = {}
    for reduction in plan.reductions:  # one pass, under any of their flags
        groups.setdefault((reduction.level, _nest(reduction, plan.frame)), []).append(reduction)
    _defer_from_maxima(groups)
    by_span: dict = {}
    for r in plan.results:
        by_span.setdefault(tuple(d for d in r.dims if d in plan.inner), []).append(r)
    keep = {inner: kept(plan, groups, inner, _indices(inner)) for inner in by_span}
    for k in (k for found in keep.values() for k in found):
        printer.scratch.add(k.name)
        emit.setup.append(f"{k.name} = np.full(({', '.join(sizes[dim_of(i)] for i in k.indices)},), lo_)")
    for key in sorted(groups, key=lambda k: k[0]):
        emit.reductions(groups[key], [k for found in keep.values() for k in found if k.group == key])
    for inner, group in by_span.items():
        for part in _loops_of(group):
            emit.results(part, inner, keep[inner])
    return [emit.lines[0], *(f"    {line}" for line in emit.setup), *emit.lines[1:]]


def _loops_of(group: list[Result]) -> list[list[Result]]:
    """The result loops over one span: one per result when each is computed under a flag of its own
    (a vjp's gradients: one store per loop, which LLVM vectorises; stores to several arrays under
    tests in one loop it does not), else one loop for all."""
    guards = [r.guard for r in group]
    if len(group) > 1 and all(guards) and len(set(guards)) == len(guards):
        return [[r] for r in group]
    return [group]


def _indices(inner: tuple) -> list[sp.Idx]:
    """The loop indices of a result pass over the ``inner`` axes."""
    return [sp.Idx(axis_variable(d), (0, d - 1)) for d in inner]
