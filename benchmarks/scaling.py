"""Scaling rows: latency, bytes and accuracy of both methods for knowledge sets of 4 to 256 sentences."""

from __future__ import annotations

import random
import statistics
from collections import Counter
from collections.abc import Iterator
from typing import Any

from benchmarks.config import BenchConfig
from benchmarks.knowledge_sets import knowledge_set
from benchmarks.prefix import context_window, kv_bytes_per_token, prompt_tokens
from benchmarks.timing import measure, measure_interleaved
from reckoning_core.batching import fact_rows
from reckoning_core.knowledge_ids import normalize_facts
from reckoning_core.prefix_cache import context_prefix
from reckoning_core.reckoner import Answer, Reckoner
from service.engine import stored_form
from training.data.episode import Episode

ANSWER_CHUNK = 64  # questions per answering call: bounds the batch's memory at 256 facts (1,000+ questions)


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), ANSWER_CHUNK):
        yield items[i : i + ANSWER_CHUNK]


def _accuracy(answers: list[Answer], episode: Episode) -> tuple[int, int]:
    return sum(a.answer == q.answer for a, q in zip(answers, episode.questions, strict=True)), len(answers)


def fact_tokens(reckoner: Reckoner, facts: list[str], template: bool) -> int:
    """Tokens the inner loop runs on (<bos> fact <eos> per fact), with the checkpoint's fact template or plain."""
    norm = normalize_facts(facts)
    texts = [reckoner.config.prompt.fact_text(f) for f in norm] if template else norm
    return sum(len(r) for r in fact_rows(reckoner.tokenizer, texts, reckoner.config.encode.max_fact_tokens))


def scaling_row(reckoner: Reckoner, icr: Reckoner, sets: list[Episode], cfg: BenchConfig, delta_dtype: str,
                delta_rank: int) -> dict[str, Any]:
    """One size: timings on the first set, accuracy over all of them; ICR fields null past the window."""
    first = sets[0]
    facts, question = list(first.facts), first.questions[0].text
    window = context_window(icr)
    tokens_needed = max(prompt_tokens(icr, list(s.facts), [q.text for q in s.questions]) for s in sets)
    fits = tokens_needed <= window
    enc = measure(lambda: reckoner.encode(facts, with_recall=False), cfg.scaling_repeats, 1)
    blob, stored = stored_form(reckoner, reckoner.encode(facts, with_recall=False).delta, delta_dtype, delta_rank)
    weights = reckoner.merged(stored)
    fns: dict[str, Any] = {"ask": lambda: reckoner.answer([question], weights)}
    cache = None
    if fits:
        cache = icr.prefill_context(facts)
        fns["icr"] = lambda: icr.answer_in_context(facts, [question])
        fns["icr_prefix"] = lambda: icr.answer_from_context(cache, facts, [question])  # type: ignore[arg-type]
        fns["icr_prefix_prefill"] = lambda: icr.prefill_context(facts)
    asks = measure_interleaved(fns, cfg.scaling_ask_repeats, cfg.warmup)

    right_r = right_i = total = 0
    for ep in sets:
        texts = [q.text for q in ep.questions]
        w = reckoner.merged(stored_form(reckoner, reckoner.encode(list(ep.facts), with_recall=False).delta,
                                        delta_dtype, delta_rank)[1])
        got, n = _accuracy([a for c in _chunks(texts) for a in reckoner.answer(c, w)], ep)
        right_r, total = right_r + got, total + n
        if fits:
            c = icr.prefill_context(list(ep.facts))  # answers equal plain in-context ones (tests/core)
            right_i += _accuracy([a for ch in _chunks(texts) for a in icr.answer_from_context(c, list(ep.facts), ch)],
                                 ep)[0]
    labels = Counter(q.answer for ep in sets for q in ep.questions)
    prefix_text = context_prefix(icr.config.prompt, facts)
    prefix_tokens = 1 + len(icr.tokenizer(prefix_text, add_special_tokens=False)["input_ids"])  # <bos> + facts

    def ms(name: str) -> float | None:
        return round(asks[name].median_ms, 3) if name in asks else None

    return {
        "n_facts": len(facts),
        "fact_tokens": fact_tokens(reckoner, facts, template=False),
        "encode_tokens": fact_tokens(reckoner, facts, template=True),
        "icr_prompt_tokens": tokens_needed,
        "context_window": window,
        "icr_fits": fits,
        "note": None if fits else f"the in-context prompt needs {tokens_needed} tokens; the window is {window}",
        "encode_ms": round(enc.median_ms, 3),
        "ask_ms": ms("ask"),
        "icr_ms": ms("icr"),
        "icr_prefix_ms": ms("icr_prefix"),
        "icr_prefix_prefill_ms": ms("icr_prefix_prefill"),
        "delta_bytes": len(blob),
        "kv_cache_bytes": cache.nbytes() if cache is not None else None,
        "kv_cache_bytes_needed": prefix_tokens * kv_bytes_per_token(icr),
        "accuracy_reckoning": round(right_r / total, 4),
        "accuracy_icr": round(right_i / total, 4) if fits else None,
        "majority_label_share": round(labels.most_common(1)[0][1] / total, 4),
        "n_sets": len(sets),
        "n_questions": total,
        "mean_questions_per_set": round(statistics.mean(len(s.questions) for s in sets), 1),
    }


def scaling(reckoner: Reckoner, icr: Reckoner, cfg: BenchConfig, delta_dtype: str, delta_rank: int,
            log: Any = None) -> list[dict[str, Any]]:
    """One row per size in cfg.scaling_sizes, each from cfg.scaling_sets generated sets (fixed seed)."""
    rows = []
    for size in cfg.scaling_sizes:
        rng = random.Random(f"{cfg.seed}-{size}")
        sets = [knowledge_set(rng, i, size) for i in range(cfg.scaling_sets)]
        if log is not None:
            print(f"bench: scaling {size} sentences ({len(sets)} sets)", file=log, flush=True)
        rows.append(scaling_row(reckoner, icr, sets, cfg, delta_dtype, delta_rank))
    return rows
