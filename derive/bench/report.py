"""Text and Markdown reports of benchmark results, and the issue's targets checked against them.

Targets: the generated vjp within 1.15x of the tuned closed form and faster than PyTorch's
autograd for the normalizations and softmaxes in float32 at the large shapes; peak memory of
every vjp but linear algebra and attention at most 4x its input (inputs of 1 MiB or more);
``derive generate`` at most 60 s from scratch and 2 s when nothing changed.
"""

from __future__ import annotations

from typing import Any

from .cases import CLOSED_VJP, GENERATED_VJP, GENERATED_VJP_JVP, NUMBA_FORWARD, NUMBA_VJP, TORCH_VJP, TORCH_VJP_JVP

SPEED_OPS = ("rmsnorm", "layernorm", "softmax", "log_softmax", "batchnorm")
SECOND_ORDER_OPS, SECOND_ORDER_SHAPE = ("rmsnorm", "layernorm", "softmax"), [4096, 1024]
"""Issue 15's target: vjp_jvp no slower than PyTorch's double backward for these, float32, this shape."""
LARGE_INPUT_BYTES = 16 << 20
MEMORY_MIN_INPUT_BYTES = 1 << 20
"""Below 1 MiB, Python's fixed allocations dominate a peak: no memory target there."""
CLOSED_LIMIT, MEMORY_LIMIT, SCRATCH_LIMIT_S, UNCHANGED_LIMIT_S = 1.15, 4.0, 60.0, 2.0
MEMORY_EXEMPT_CATEGORIES = ("linear algebra", "attention")
NUMBA_FLOOR_OPS = ("rmsnorm", "layernorm", "softmax", "log_softmax")
NUMBA_TORCH_OPS = (*NUMBA_FLOOR_OPS, "batchnorm", "group_norm")
NUMBA_FLOOR_PCT, NUMBA_TORCH_SPEEDUP, NUMBA_NEW_PROCESS_S = 60.0, 1.5, 1.0
"""Issue 13: the numba vjp (and forward) at >= 60% of the copy-bandwidth floor, >= 1.5x faster than
PyTorch's autograd backward, and a second process's first call of a cached kernel under 1 s."""


def _number(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def _field(row: dict[str, Any] | None, key: str) -> float | None:
    return None if row is None else row[key]


def _ratio(mine: float | None, other: float | None) -> float | None:
    return None if mine is None or not other else mine / other


def _ms(value: float | None) -> str:
    """Three significant digits: 0.271, 90.6, 125."""
    return "-" if value is None else f"{value:.3g}" if value < 100 else f"{value:.0f}"


def case_title(result: dict) -> str:
    return f"{result['op']} {tuple(result['shape'])} {result['dtype']}"


def case_text(result: dict) -> str:
    """One case as an aligned text table, then the vjp ratios."""
    lines = [f"{case_title(result)}: largest input {result['input_bytes'] / 1e6:.1f} MB, "
             f"copy {result['copy_gbs']:.1f} GB/s",
             f"  {'':<24}{'ms':>10}{'GB/s':>8}{'% copy':>8}{'peak/input':>12}"]
    for row in result["rows"]:
        note = f"  DISAGREES: {row['disagrees']}" if row["disagrees"] else ""
        lines.append(f"  {row['name']:<24}{row['ms']:>10.2f}{row['gbs']:>8.2f}{row['copy_pct']:>7.0f}%"
                     f"{_number(row['peak_ratio'], 2, 'x'):>12}{note}")
    for name, ratio in result["ratios"].items():
        lines.append(f"  {name}: {ratio:.2f}x")
    first = result.get("numba_first_call_s")
    if first:
        source = "its cache index existed" if first["cache_before"] else "no cache: compiling"
        again = "-" if first["new_process"] is None else f"{first['new_process']:.2f} s"
        lines.append(f"  numba first call ({source}): forward {first['forward']:.2f} s, vjp {first['vjp']:.2f} s; "
                     f"in a new process (cached): {again}")
    lines += [f"  note: {note}" for note in result.get("notes", [])]
    return "\n".join(lines)


def _row(result: dict, name: str) -> dict[str, Any] | None:
    return next((r for r in result["rows"] if r["name"] == name), None)


def _time(result: dict, name: str) -> float | None:
    row = _row(result, name)
    return None if row is None or row["disagrees"] else row["ms"]


def numba_table(results: list[dict]) -> str:
    """The README's numba table: its vjp and forward beside PyTorch and the copy floor, first calls."""
    lines = ["| operator | shape | dtype | numba vjp ms | % of copy | torch ms | torch / numba | NumPy kernel ms "
             "| numba forward % of copy | first call s (compile) | new process s (cached) |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for result in results:
        vjp, forward = _row(result, NUMBA_VJP), _row(result, NUMBA_FORWARD)
        if vjp is None:
            continue
        mine, torch, numpy = (_time(result, n) for n in (NUMBA_VJP, TORCH_VJP, GENERATED_VJP))
        first = result.get("numba_first_call_s") or {}
        compile_s = first.get("forward", 0) + first.get("vjp", 0) if first else None
        lines.append(
            f"| {result['op']} | {'×'.join(map(str, result['shape']))} | {result['dtype']} | {_ms(mine)} "
            f"| {_number(vjp['copy_pct'], 0, '%')} | {_ms(torch)} | {_number(torch and mine and torch / mine, 2, '×')} "
            f"| {_ms(numpy)} | {_number(forward['copy_pct'] if forward else None, 0, '%')} | {_number(compile_s, 2)} "
            f"| {_number(first.get('new_process'), 2)} |")
    return "\n".join(lines)


def numba_targets(result: dict) -> list[dict]:
    """Issue 13's targets for the numba kernel of one case (float32, large shapes)."""
    found: list[dict] = []
    title = case_title(result)
    if result["dtype"] != "float32" or result["input_bytes"] < LARGE_INPUT_BYTES:
        return found
    vjp, forward = _row(result, NUMBA_VJP), _row(result, NUMBA_FORWARD)
    if vjp is None or vjp["disagrees"]:
        return found
    if result["op"] in NUMBA_FLOOR_OPS:
        found.append(_target(f"{title}: numba vjp % of copy floor", vjp["copy_pct"], NUMBA_FLOOR_PCT, at_least=True))
    if result["op"] in NUMBA_TORCH_OPS and forward is not None:
        found.append(_target(f"{title}: numba forward % of copy floor", forward["copy_pct"], NUMBA_FLOOR_PCT,
                             at_least=True))
        torch = _time(result, TORCH_VJP)
        if torch:
            found.append(_target(f"{title}: torch autograd / numba vjp", torch / vjp["ms"], NUMBA_TORCH_SPEEDUP,
                                 at_least=True))
        first = result.get("numba_first_call_s") or {}
        if first.get("new_process") is not None:
            found.append(_target(f"{title}: numba first call in a new process (s)", first["new_process"],
                                 NUMBA_NEW_PROCESS_S))
    return found


def markdown_table(results: list[dict]) -> str:
    """The README's table: generated vjp beside the closed form and PyTorch, per case."""
    lines = ["| operator | shape | dtype | generated vjp ms | closed form ms | ratio | torch ms | ratio "
             "| generated GB/s | % of copy | peak / input |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for result in results:
        mine, closed, torch = (_time(result, n) for n in (GENERATED_VJP, CLOSED_VJP, TORCH_VJP))
        row = _row(result, GENERATED_VJP)
        shape = "×".join(map(str, result["shape"]))
        lines.append(
            f"| {result['op']} | {shape} | {result['dtype']} | {_ms(mine)} | {_ms(closed)} "
            f"| {_number(_ratio(mine, closed), 2, '×')} | {_ms(torch)} | {_number(_ratio(mine, torch), 2, '×')} "
            f"| {_number(_field(row, 'gbs'))} | {_number(_field(row, 'copy_pct'), 0, '%')} "
            f"| {_number(_field(row, 'peak_ratio'), 2, '×')} |")
    return "\n".join(lines)


def second_order_table(results: list[dict]) -> str:
    """The second order: generated vjp_jvp beside PyTorch's double backward, per case that has both."""
    lines = ["| operator | shape | dtype | generated vjp_jvp ms | torch double backward ms | ratio | peak / input |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for result in results:
        row = _row(result, GENERATED_VJP_JVP)
        if row is None:
            continue
        mine, torch = _time(result, GENERATED_VJP_JVP), _time(result, TORCH_VJP_JVP)
        shape = "×".join(map(str, result["shape"]))
        lines.append(f"| {result['op']} | {shape} | {result['dtype']} | {_ms(mine)} | {_ms(torch)} "
                     f"| {_number(torch and mine and mine / torch, 2, '×')} | {_number(row['peak_ratio'], 2, '×')} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def targets(results: list[dict], derivation: dict | None, categories: dict[str, str]) -> list[dict]:
    """Every target of the issue that the results can decide: what, measured, limit, met."""
    found = []
    for result in results:
        title = case_title(result)
        if result["op"] in SPEED_OPS and result["dtype"] == "float32" and result["input_bytes"] >= LARGE_INPUT_BYTES:
            mine, closed, torch = (_time(result, n) for n in (GENERATED_VJP, CLOSED_VJP, TORCH_VJP))
            if mine and closed:
                found.append(_target(f"{title}: generated vjp / closed form", mine / closed, CLOSED_LIMIT))
            if mine and torch:
                found.append(_target(f"{title}: generated vjp / torch autograd", mine / torch, 1.0, strict=True))
        if (result["op"] in SECOND_ORDER_OPS and result["dtype"] == "float32"
                and list(result["shape"]) == SECOND_ORDER_SHAPE):
            mine, torch = _time(result, GENERATED_VJP_JVP), _time(result, TORCH_VJP_JVP)
            if mine and torch:
                found.append(_target(f"{title}: generated vjp_jvp / torch double backward", mine / torch, 1.0))
        row = _row(result, GENERATED_VJP)
        category = categories.get(result["op"], "")
        exempt = (category in MEMORY_EXEMPT_CATEGORIES or "attention" in result["op"]
                  or result["input_bytes"] < MEMORY_MIN_INPUT_BYTES)
        if row is not None and row["peak_ratio"] is not None and not exempt:
            found.append(_target(f"{title}: generated vjp peak memory / input", row["peak_ratio"], MEMORY_LIMIT))
        found += numba_targets(result)
    if derivation:
        count = derivation["operators"]
        found.append(_target(f"derive generate, {count} operators, from scratch (s)", derivation["scratch_s"],
                             SCRATCH_LIMIT_S))
        found.append(_target(f"derive generate, {count} operators, unchanged (s)", derivation["unchanged_s"],
                             UNCHANGED_LIMIT_S))
    return found


def _target(what: str, measured: float, limit: float, strict: bool = False, at_least: bool = False) -> dict:
    met = measured >= limit if at_least else measured < limit if strict else measured <= limit
    return {"target": what, "measured": measured, "limit": limit, "met": met, "at_least": at_least}


def targets_text(found: list[dict]) -> str:
    lines = ["targets:"]
    for t in found:
        relation = ">=" if t.get("at_least") else "<" if t["target"].endswith("torch autograd") else "<="
        verdict = "met" if t["met"] else "MISSED"
        lines.append(f"  {verdict:<7}{t['target']}: {t['measured']:.2f} (target {relation} {t['limit']:g})")
    return "\n".join(lines)


def derivation_text(derivation: dict) -> str:
    return (f"derive generate ({derivation['operators']} operators, {derivation['cpus']} CPUs): "
            f"from scratch {derivation['scratch_s']:.2f} s, unchanged {derivation['unchanged_s']:.2f} s, "
            f"from scratch serially without the cache {derivation['serial_no_cache_s']:.2f} s")
