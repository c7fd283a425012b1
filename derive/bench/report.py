"""Text and Markdown reports of benchmark results, and the issue's targets checked against them.

Targets: the generated vjp within 1.15x of the tuned closed form and faster than PyTorch's
autograd for the normalizations and softmaxes in float32 at the large shapes; peak memory of
every vjp but linear algebra and attention at most 4x its input (inputs of 1 MiB or more); ``derive generate`` at most 60 s
from scratch and 2 s when nothing changed.
"""

from __future__ import annotations

from .kernels import CLOSED_VJP, GENERATED_VJP, GENERATED_VJP_JVP, TORCH_VJP, TORCH_VJP_JVP

SPEED_OPS = ("rmsnorm", "layernorm", "softmax", "log_softmax", "batchnorm")
SECOND_ORDER_OPS, SECOND_ORDER_SHAPE = ("rmsnorm", "layernorm", "softmax"), [4096, 1024]
"""Issue 15's target: vjp_jvp no slower than PyTorch's double backward for these, float32, this shape."""
LARGE_INPUT_BYTES = 16 << 20
MEMORY_MIN_INPUT_BYTES = 1 << 20
"""Below 1 MiB, Python's fixed allocations dominate a peak: no memory target there."""
CLOSED_LIMIT, MEMORY_LIMIT, SCRATCH_LIMIT_S, UNCHANGED_LIMIT_S = 1.15, 4.0, 60.0, 2.0
MEMORY_EXEMPT_CATEGORIES = ("linear algebra", "attention")


def _number(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


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
    lines += [f"  note: {note}" for note in result.get("notes", [])]
    return "\n".join(lines)


def _row(result: dict, name: str) -> dict | None:
    return next((r for r in result["rows"] if r["name"] == name), None)


def _time(result: dict, name: str) -> float | None:
    row = _row(result, name)
    return None if row is None or row["disagrees"] else row["ms"]


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
            f"| {_number(closed and mine / closed, 2, '×')} | {_ms(torch)} | {_number(torch and mine / torch, 2, '×')} "
            f"| {_number(row['gbs'])} | {_number(row['copy_pct'], 0, '%')} | {_number(row['peak_ratio'], 2, '×')} |")
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
    if derivation:
        count = derivation["operators"]
        found.append(_target(f"derive generate, {count} operators, from scratch (s)", derivation["scratch_s"], SCRATCH_LIMIT_S))
        found.append(_target(f"derive generate, {count} operators, unchanged (s)", derivation["unchanged_s"], UNCHANGED_LIMIT_S))
    return found


def _target(what: str, measured: float, limit: float, strict: bool = False) -> dict:
    met = measured < limit if strict else measured <= limit
    return {"target": what, "measured": measured, "limit": limit, "met": met}


def targets_text(found: list[dict]) -> str:
    lines = ["targets:"]
    for t in found:
        relation = "<" if t["target"].endswith("torch autograd") else "<="  # faster; the others: no slower
        verdict = "met" if t["met"] else "MISSED"
        lines.append(f"  {verdict:<7}{t['target']}: {t['measured']:.2f} (target {relation} {t['limit']:g})")
    return "\n".join(lines)


def derivation_text(derivation: dict) -> str:
    return (f"derive generate ({derivation['operators']} operators, {derivation['cpus']} CPUs): "
            f"from scratch {derivation['scratch_s']:.2f} s, unchanged {derivation['unchanged_s']:.2f} s, "
            f"from scratch serially without the cache {derivation['serial_no_cache_s']:.2f} s")
