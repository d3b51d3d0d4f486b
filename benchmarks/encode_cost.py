"""Cheaper encodes, measured on the shipped weights (no meta-training): tokens per fact, fewer inner steps, an
adaptive stop; and batched encodes (several knowledge sets through one inner loop) in sets per second."""

from __future__ import annotations

import functools
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks.config import BenchConfig
from benchmarks.data import distinct_sets
from benchmarks.latency import break_even
from benchmarks.prefix import break_even_prefix
from benchmarks.scaling import count_right, fact_tokens
from benchmarks.timing import measure_interleaved
from reckoning_core.reckoner import MergedWeights, Reckoner
from training.data.episode import Episode


@dataclass(frozen=True)
class Variant:
    name: str
    reckoner: Reckoner
    stop_below: float | None = None
    note: str = ""


def with_steps(reckoner: Reckoner, steps: int) -> Reckoner:
    """The same weights with `steps` inner steps: the learned LR schedule regrouped (Checkpoint.with_config)."""
    config = reckoner.config
    ckpt = reckoner.ckpt.with_config(replace(config, encode=replace(config.encode, inner_steps=steps)))
    return Reckoner(ckpt, reckoner.device, reckoner.inner_autocast)


def with_plain_facts(reckoner: Reckoner) -> Reckoner:
    """The same weights and LRs, facts written plainly for the inner loop (no question template)."""
    config = reckoner.config
    ckpt = reckoner.ckpt.with_config(replace(config, prompt=replace(config.prompt, fact="{fact}")))
    return Reckoner(ckpt, reckoner.device, reckoner.inner_autocast)


def variants(reckoner: Reckoner, cfg: BenchConfig) -> list[Variant]:
    k = reckoner.config.encode.inner_steps
    out = [Variant(f"K={k} (shipped)", reckoner)]
    for steps in cfg.encode_option_steps:
        if steps != k:
            out.append(Variant(f"K={steps}, learned LRs regrouped", with_steps(reckoner, steps),
                               note="not meta-trained for this K"))
    if cfg.option_model and Path(cfg.option_model).is_dir():
        option = Reckoner.from_pretrained(cfg.option_model, device=reckoner.device, torch_threads=cfg.threads,
                                          inner_autocast=reckoner.inner_autocast)
        out.append(Variant(f"K={option.config.encode.inner_steps} meta-trained ({Path(cfg.option_model).name})",
                           option))
    if reckoner.config.prompt.fact != "{fact}":
        out.append(Variant("plain facts (no template)", with_plain_facts(reckoner), note="not meta-trained for it"))
    for threshold in cfg.adaptive_thresholds:
        out.append(Variant(f"K={k}, stop once fact loss < {threshold:g}", reckoner, stop_below=threshold))
    return out


def _dev_accuracy(v: Variant, theories: list[Episode]) -> dict[str, Any]:
    right = total = 0
    steps: list[int] = []
    seconds: list[float] = []
    for t in theories:
        started = time.perf_counter()
        enc = v.reckoner.encode(list(t.facts), with_recall=False, stop_below=v.stop_below)
        seconds.append(time.perf_counter() - started)
        steps.append(enc.steps)
        got, n = count_right(v.reckoner.answer([q.text for q in t.questions], enc.delta), t)
        right, total = right + got, total + n
    return {"accuracy": round(right / total, 4), "n_questions": total, "mean_steps": round(statistics.mean(steps), 3),
            "slice_encode_mean_ms": round(1e3 * statistics.mean(seconds), 3)}


def cheaper_encodes(reckoner: Reckoner, icr: Reckoner, theories: list[Episode], hot: Episode, weights: MergedWeights,
                    cfg: BenchConfig) -> dict[str, Any]:
    """Each variant: dev-slice accuracy, encode_ms on the typical theory and break_even_questions against plain
    ICR and against prefix-cached ICR (both on the FT-ICR checkpoint). Every encode and every ask these
    break-evens use is timed in one interleaved loop, so a change in load cannot tilt them."""
    dev = theories[: cfg.encode_option_theories]
    vs = variants(reckoner, cfg)
    facts, question = list(hot.facts), hot.questions[0].text
    cache = icr.prefill_context(facts)
    asks: dict[str, Callable[[], object]] = {
        "ask": functools.partial(reckoner.answer, [question], weights),
        "icr": functools.partial(icr.answer_in_context, facts, [question]),
        "icr_prefix": functools.partial(icr.answer_from_context, cache, facts, [question]),
        "icr_prefix_prefill": functools.partial(icr.prefill_context, facts),
    }
    fns: dict[str, Callable[[], object]] = {
        v.name: functools.partial(v.reckoner.encode, facts, with_recall=False, stop_below=v.stop_below) for v in vs
    }
    # each round: every encode once, every ask `per_round` times (an ask is ~100x shorter than an encode)
    per_round = 5
    for name, fn in asks.items():
        for i in range(per_round):
            fns[f"{name}#{i}"] = fn
    times = measure_interleaved(fns, cfg.encode_repeats, cfg.warmup)
    window = {f"{name}_ms": round(statistics.median(times[f"{name}#{i}"].median_ms for i in range(per_round)), 3)
              for name in asks}
    ask_ms, icr_ms = window["ask_ms"], window["icr_ms"]
    prefill_ms, prefix_ms = window["icr_prefix_prefill_ms"], window["icr_prefix_ms"]
    rows = []
    for v in vs:
        enc_ms = times[v.name].median_ms
        rows.append({
            "name": v.name,
            "inner_steps": v.reckoner.config.encode.inner_steps,
            "stop_below": v.stop_below,
            "note": v.note,
            "encode_ms": round(enc_ms, 3),
            **_dev_accuracy(v, dev),
            "break_even_questions": break_even(enc_ms, ask_ms, icr_ms),
            "break_even_questions_prefix": break_even_prefix(enc_ms, ask_ms, prefill_ms, prefix_ms),
        })
    # the same slice in context on the FT-ICR checkpoint (prefix-cached: the same answers as plain in-context)
    icr_right = icr_total = 0
    for t in dev:
        answers = icr.answer_from_context(icr.prefill_context(list(t.facts)), list(t.facts),
                                          [q.text for q in t.questions])
        got, n_asked = count_right(answers, t)
        icr_right, icr_total = icr_right + got, icr_total + n_asked
    base = rows[0]["accuracy"]
    for r in rows:
        r["accuracy_drop_pts"] = round(100 * (base - r["accuracy"]), 2)
    all_facts = [f for t in dev for f in t.facts]
    n = len(all_facts)
    return {
        "slice": f"the first {len(dev)} theories of owa_dev_natlang.jsonl, full theory",
        "tokens_per_fact": {
            "template": reckoner.config.prompt.fact,
            "with_template": round(fact_tokens(reckoner, all_facts, template=True) / n, 2),
            "plain": round(fact_tokens(reckoner, all_facts, template=False) / n, 2),
        },
        "icr_model": icr.model_name,
        "icr_accuracy": round(icr_right / icr_total, 4),
        "majority_label_share": round(max(Counter(q.answer for t in dev for q in t.questions).values()) / icr_total, 4),
        "same_window": window,
        "variants": rows,
    }


def encode_batching(reckoner: Reckoner, theories: list[Episode], cfg: BenchConfig) -> dict[str, Any]:
    """encode_sets_per_s with B pending sets through one inner loop (Reckoner.encode_many), against the same B
    sets encoded one after another, interleaved; the sets are distinct real dev theories."""
    n_max = max(cfg.encode_batch_sizes)
    sets = [list(f) for f, _ in distinct_sets(theories, n_max)]
    reckoner.encode_many(sets[:2])  # warm-up (vmap's first call traces)
    batched: dict[str, float] = {}
    sequential: dict[str, float] = {}
    for b in cfg.encode_batch_sizes:
        chunk = sets[:b]

        def one_by_one(chunk: list[list[str]] = chunk) -> None:
            for facts in chunk:
                reckoner.encode(facts, with_recall=False)

        times = measure_interleaved({"batched": functools.partial(reckoner.encode_many, chunk),
                                     "sequential": one_by_one}, cfg.encode_batch_repeats, 0)
        batched[str(b)] = round(b / (times["batched"].median_ms / 1e3), 3)
        sequential[str(b)] = round(b / (times["sequential"].median_ms / 1e3), 3)
    return {
        "encode_sets_per_s": batched,
        "sequential_sets_per_s": sequential,
        "speedup": {k: round(batched[k] / sequential[k], 3) for k in batched},
        "mean_facts_per_set": round(statistics.mean(len(s) for s in sets), 1),
        "repeats": cfg.encode_batch_repeats,
    }
