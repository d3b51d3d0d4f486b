"""Targets and the markdown performance table rendered from bench.json (reckoning bench report)."""

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.report_sections import (
    load_note,
    render_batching,
    render_cheaper,
    render_prefix,
    render_scaling,
    where_each_wins,
)

SMALL_DELTA_BYTES = 1_000_000  # "<= 1 MB per knowledge set", decimal megabyte


@dataclass(frozen=True)
class Target:
    key: str
    figure: str
    op: str  # "<=" or ">="
    threshold: float
    value: Callable[[dict[str, Any]], float | None]


def _get(path: str) -> Callable[[dict[str, Any]], float | None]:
    def read(data: dict[str, Any]) -> float | None:
        node: Any = data
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return float(node) if isinstance(node, int | float) and not isinstance(node, bool) else None

    return read


def small_delta_option(data: dict[str, Any]) -> dict[str, Any] | None:
    """The <= 1 MB delta option that loses the fewest points of dev accuracy (None if none is that small)."""
    options = (data.get("delta_options") or {}).get("options") or []
    small = [o for o in options if o["bytes"] <= SMALL_DELTA_BYTES]
    return min(small, key=lambda o: (o["accuracy_drop_pts"], o["bytes"])) if small else None


def _row(data: dict[str, Any], n_facts: int) -> dict[str, Any] | None:
    return next((r for r in data.get("scaling") or [] if r.get("n_facts") == n_facts), None)


def _ask_flat(data: dict[str, Any]) -> float | None:
    """ask_ms at 256 sentences over ask_ms at 4."""
    small, big = _row(data, 4), _row(data, 256)
    if not small or not big or not small.get("ask_ms") or big.get("ask_ms") is None:
        return None
    return float(big["ask_ms"]) / float(small["ask_ms"])


def _delta_over_kv_64(data: dict[str, Any]) -> float | None:
    """delta_bytes / kv_cache_bytes at 64 sentences (the KV cache it would need when it does not fit)."""
    row = _row(data, 64)
    kv = row and (row.get("kv_cache_bytes") or row.get("kv_cache_bytes_needed"))
    return float(row["delta_bytes"]) / float(kv) if row and kv else None


def _accuracy_256(data: dict[str, Any]) -> float | None:
    row = _row(data, 256)
    return float(row["accuracy_reckoning"]) if row else None


def _small_drop(data: dict[str, Any]) -> float | None:
    best = small_delta_option(data)
    return float(best["accuracy_drop_pts"]) if best else None


TARGETS = (
    Target("ask_overhead", "ask_overhead (ask_ms / plain_ms)", "<=", 1.15, _get("ask_overhead")),
    Target("icr_over_ask", "icr_ms / ask_ms (full theory)", ">=", 2.0, _get("icr_over_ask")),
    Target("break_even_questions", "break_even_questions", "<=", 16, _get("break_even_questions")),
    Target("many_over_one", "http many_over_one (distinct ids / 1 hot id asks/s)", ">=", 0.9,
           _get("http.many_over_one")),
    Target("ask_flat", "ask_ms at 256 sentences / at 4", "<=", 1.2, _ask_flat),
    Target("delta_over_kv_64", "delta_bytes / kv_cache_bytes at 64 sentences", "<=", 1.0, _delta_over_kv_64),
    Target("accuracy_256", "accuracy_reckoning at 256 sentences (beyond the window; the aim)", ">=", 0.9,
           _accuracy_256),
    Target("small_delta_option", "accuracy lost by the best delta option of <= 1 MB (points)", "<=", 1.0,
           _small_drop),
)


def check_targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for t in TARGETS:
        v = t.value(data)
        if v is None or math.isnan(v):
            status = "n/a"
        else:
            status = "pass" if (v <= t.threshold if t.op == "<=" else v >= t.threshold) else "miss"
        out.append({"key": t.key, "figure": t.figure, "target": f"{t.op} {t.threshold:g}",
                    "value": None if v is None else round(v, 4), "status": status})
    return out


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        v = f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
    return f"{v}{unit}"


def _mb(n: int) -> str:
    return f"{n / 1e6:,.2f} MB" if n >= 10_000 else f"{n:,} B"


def render_table(data: dict[str, Any]) -> str:
    """The headline table: every contract figure, with its target and pass/miss where it has one."""
    checks = {c["key"]: c for c in check_targets(data)}

    def row(figure: str, value: str, key: str | None = None) -> str:
        c = checks.get(key) if key else None
        if c is None:
            return f"| {figure} | {value} |  |  |"
        status = {"pass": "pass", "miss": "**miss**", "n/a": "n/a"}[c["status"]]
        return f"| {figure} | {value} | {c['target']} | {status} |"

    http = data.get("http") or {}
    hot, many = http.get("hot") or {}, http.get("distinct") or {}
    best = small_delta_option(data)
    lines = [
        "| figure | value | target | status |",
        "| --- | --- | --- | --- |",
        row("encode_ms (one full theory, inner loop)", _fmt(data.get("encode_ms"), " ms")),
        row("ask_ms (one question, delta held as a hot /ask holds it)", _fmt(data.get("ask_ms"), " ms")),
        row("plain_ms (same question, base weights)", _fmt(data.get("plain_ms"), " ms")),
        row("icr_ms (same question, all facts in the prompt)", _fmt(data.get("icr_ms"), " ms")),
        row("ask_overhead = ask_ms / plain_ms", _fmt(data.get("ask_overhead")), "ask_overhead"),
        row("icr_ms / ask_ms", _fmt(data.get("icr_over_ask")), "icr_over_ask"),
        row("break_even_questions", _fmt(data.get("break_even_questions")), "break_even_questions"),
        row("icr_prefix_prefill_ms (facts prefilled once, FT-ICR model)",
            _fmt(data.get("icr_prefix_prefill_ms"), " ms")),
        row("icr_prefix_ms (one question from the prefix cache)", _fmt(data.get("icr_prefix_ms"), " ms")),
        row("icr_prefix_ms / ask_ms", _fmt(data.get("icr_prefix_over_ask"))),
        row("break_even_questions against prefix-cached ICR",
            "never" if "icr_prefix_ms" in data and data.get("break_even_questions_prefix") is None
            else _fmt(data.get("break_even_questions_prefix"))),
        row("kv_cache_bytes (the facts' KV cache, fp16)",
            _mb(data["kv_cache_bytes"]) if data.get("kv_cache_bytes") else "–"),
        row("encode_sets_per_s at batch 1 / 4 / 16",
            " / ".join(_fmt(v) for v in (data.get("encode_sets_per_s") or {}).values()) or "–"),
        row("ask_ms at 256 sentences / at 4", _fmt(_ask_flat(data)), "ask_flat"),
        row("delta_bytes / kv_cache_bytes at 64 sentences", _fmt(_delta_over_kv_64(data)), "delta_over_kv_64"),
        row("accuracy_reckoning at 256 sentences", _fmt(_accuracy_256(data)), "accuracy_256"),
        row("ask merging the delta on every call", _fmt((data.get("details") or {}).get("ask_unmerged_ms"), " ms")),
        row("ask from the stored blob (verify + load + merge + ask, a cold /ask)",
            _fmt((data.get("details") or {}).get("ask_from_blob_ms"), " ms")),
        row("encode as /encode does it (inner loop + recall + serialise)",
            _fmt((data.get("details") or {}).get("encode_full_ms"), " ms")),
        row("delta_bytes (stored form, service default)", _mb(data["delta_bytes"]) if "delta_bytes" in data else "–"),
        row(f"batched_ask_speedup ({(data.get('batched_ask') or {}).get('n_questions', 16)} questions, one call)",
            _fmt(data.get("batched_ask_speedup"), "×")),
        row("http asks/s, 1 hot id", _fmt(hot.get("asks_per_s"))),
        row(f"http asks/s, {http.get('n_distinct_ids', '?')} distinct ids", _fmt(many.get("asks_per_s"))),
        row("http p50 / p99, 1 hot id", f"{_fmt(hot.get('p50_ms'))} / {_fmt(hot.get('p99_ms'), ' ms')}"),
        row("http p50 / p99, distinct ids", f"{_fmt(many.get('p50_ms'))} / {_fmt(many.get('p99_ms'), ' ms')}"),
        row("http many_over_one", _fmt(http.get("many_over_one")), "many_over_one"),
        row(f"best delta option ≤ 1 MB: {best['name'] if best else 'none'}"
            + (f" ({_mb(best['bytes'])}, accuracy {best['accuracy']:.1%})" if best else ""),
            _fmt(best["accuracy_drop_pts"], " pts lost") if best else "–", "small_delta_option"),
        row(f"server_rss_mb_1000_sets (measured with {data.get('server_rss_sets', '?')} sets)",
            _fmt(data.get("server_rss_mb_1000_sets"), " MiB")),
    ]
    return "\n".join(lines)


def render_options(data: dict[str, Any]) -> str:
    opts = data.get("delta_options") or {}
    if not opts.get("options"):
        return ""
    lines = [
        f"Dev accuracy on the {opts['slice']} ({opts['n_questions']} questions); without knowledge "
        f"{opts['no_knowledge_accuracy']:.1%}, majority label {opts['majority_label_accuracy']:.1%}.",
        "",
        f"Points lost and agreement are against the exact inner-loop result ({opts.get('exact', 'dense fp32')}); "
        f"the service stores **{opts['default']}** by default (`RECKONING_DELTA_DTYPE`, `RECKONING_DELTA_RANK`).",
        "",
        "| fast weights | stored bytes / set | dev accuracy | lost vs exact (pts) | same answer as exact "
        "| encode ms | inner LRs |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for o in opts["options"]:
        agree = o.get("agreement_with_exact", o.get("agreement_with_default"))  # older bench.json files
        name = f"**{o['name']} (service default)**" if o.get("service_default") else o["name"]
        lines.append(f"| {name}{' (trained)' if o['trained_selection'] else ''} | {_mb(o['bytes'])} "
                     f"| {o['accuracy']:.1%} | {o['accuracy_drop_pts']:+.1f} | {agree:.1%} "
                     f"| {o['encode_ms']:.0f} | {o['lr_source']} |")
    return "\n".join(lines)


def render_markdown(data: dict[str, Any], source: str = "results/bench.json") -> str:
    m, model, git = data.get("machine", {}), data.get("model", {}), data.get("git", {})
    http = data.get("http") or {}
    parts = [
        "# Benchmark",
        "",
        f"<!-- generated by `reckoning bench report` from {source}; do not edit by hand -->",
        "",
        f"Model `{model.get('name')}` (fingerprint `{str(model.get('fingerprint', ''))[:12]}`), "
        f"{'quick' if data.get('quick') else 'full'} run, commit `{str(git.get('commit') or '')[:10]}`"
        f"{' (dirty tree)' if git.get('dirty') else ''}, {data.get('started_at', '')}. "
        f"{m.get('cpu_count')} CPUs ({m.get('cpu_model')}), torch {m.get('torch')} with "
        f"{m.get('torch_threads')} thread(s), load average {m.get('loadavg_1m_at_start')} at start. "
        "Every timing is a median over repeats after warm-up.",
        "",
    ]
    load = max(m.get("loadavg_1m_at_start") or 0, m.get("loadavg_1m_at_end") or 0)
    note = load_note(data)
    if note:
        parts += [f"> {note}", ""]
    elif m.get("cpu_count") and load > m["cpu_count"] - 0.5:
        # other work shared the cores: say so next to the numbers instead of letting them pass as clean
        parts += [f"> Note: load average up to {load} on {m['cpu_count']} CPUs during this run; other processes "
                  "shared the cores, so absolute timings are pessimistic and ratios noisy.", ""]
    parts += [
        render_table(data),
        "",
    ]
    if http:
        redis = http.get("redis", {})
        parts += [
            f"HTTP: {http.get('concurrency')} concurrent clients, {http.get('seconds_per_scenario')} s per scenario "
            f"in {http.get('rounds')} alternating segments, each after {http.get('warmup_s')} s of warm-up, "
            "real uvicorn and redis-server on loopback "
            f"(Redis held {redis.get('used_memory_mb')} MiB of deltas and facts; re-encodes during the "
            f"distinct-ids run: {(http.get('distinct') or {}).get('reencodes')}).",
            "",
        ]
    for title, body in (("Where each method wins", where_each_wins(data)),
                        ("Prefix-cached in-context baseline", render_prefix(data)),
                        ("Scaling with knowledge size", render_scaling(data)),
                        ("Cheaper encodes", render_cheaper(data)),
                        ("Batched encodes", render_batching(data))):
        if body:
            parts += [f"## {title}", "", body, ""]
    options = render_options(data)
    if options:
        parts += ["## Delta options", "", options, ""]
    if (data.get("amortization") or {}).get("n"):
        parts += ["## Amortization", "", "![amortization](amortization.png)", ""]
    return "\n".join(parts)


def report_cmd(json_path: str = "results/bench.json", md: str | None = None) -> None:
    """`reckoning bench report`: bench.md (beside the JSON unless `md` is given) from a bench.json."""
    src = Path(json_path)
    data = json.loads(src.read_text())
    out = Path(md) if md else src.with_name("bench.md")
    out.write_text(render_markdown(data, str(src)))
    print(f"wrote {out}")
