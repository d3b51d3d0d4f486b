"""Scaling rows: latency, bytes and accuracy of both methods for knowledge sets of 4 to 256 sentences."""

from __future__ import annotations

import functools
import random
import statistics
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from benchmarks.config import BenchConfig
from benchmarks.knowledge_sets import knowledge_set
from benchmarks.prefix import context_window, kv_bytes_per_token, prompt_tokens
from benchmarks.timing import Timing, measure_interleaved
from reckoning_core.batching import fact_rows
from reckoning_core.knowledge_ids import normalize_facts
from reckoning_core.prefix_cache import PrefixCache, context_prefix
from reckoning_core.reckoner import Answer, MergedWeights, Reckoner
from service.engine import stored_form
from training.data.episode import Episode

ANSWER_CHUNK = 64  # questions per answering call: bounds the batch's memory at 256 facts (1,000+ questions)


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), ANSWER_CHUNK):
        yield items[i : i + ANSWER_CHUNK]


def count_right(answers: list[Answer], episode: Episode) -> tuple[int, int]:
    """(right, asked) for answers to the episode's questions, in order."""
    return sum(a.answer == q.answer for a, q in zip(answers, episode.questions, strict=True)), len(answers)


def fact_tokens(reckoner: Reckoner, facts: list[str], template: bool) -> int:
    """Tokens the inner loop runs on (<bos> fact <eos> per fact), with the checkpoint's fact template or plain."""
    norm = normalize_facts(facts)
    texts = [reckoner.config.prompt.fact_text(f) for f in norm] if template else norm
    return sum(len(r) for r in fact_rows(reckoner.tokenizer, texts, reckoner.config.encode.max_fact_tokens))


@dataclass
class _Size:
    """One knowledge-set size: its sets, and what the timed calls need, made once."""

    sets: list[Episode]
    fits: bool
    tokens_needed: int
    blob: bytes
    weights: MergedWeights
    cache: PrefixCache | None

    @property
    def facts(self) -> list[str]:
        return list(self.sets[0].facts)

    @property
    def question(self) -> str:
        return self.sets[0].questions[0].text


def _prepare(reckoner: Reckoner, icr: Reckoner, sets: list[Episode], delta_dtype: str, delta_rank: int) -> _Size:
    first = list(sets[0].facts)
    tokens_needed = max(prompt_tokens(icr, list(s.facts), [q.text for q in s.questions]) for s in sets)
    fits = tokens_needed <= context_window(icr)
    blob, stored = stored_form(reckoner, reckoner.encode(first, with_recall=False).delta, delta_dtype, delta_rank)
    return _Size(sets, fits, tokens_needed, blob, reckoner.merged(stored), icr.prefill_context(first) if fits else None)


def _accuracies(reckoner: Reckoner, icr: Reckoner, size: _Size, delta_dtype: str,
                delta_rank: int) -> tuple[float, float | None, int]:
    right_r = right_i = total = 0
    for ep in size.sets:
        texts = [q.text for q in ep.questions]
        w = reckoner.merged(stored_form(reckoner, reckoner.encode(list(ep.facts), with_recall=False).delta,
                                        delta_dtype, delta_rank)[1])
        got, n = count_right([a for c in _chunks(texts) for a in reckoner.answer(c, w)], ep)
        right_r, total = right_r + got, total + n
        if size.fits:
            c = icr.prefill_context(list(ep.facts))  # answers equal plain in-context ones (tests/core)
            right_i += count_right([a for ch in _chunks(texts) for a in icr.answer_from_context(c, list(ep.facts), ch)],
                                   ep)[0]
    return right_r / total, (right_i / total if size.fits else None), total


def scaling(reckoner: Reckoner, icr: Reckoner, cfg: BenchConfig, delta_dtype: str, delta_rank: int,
            log: Any = None) -> list[dict[str, Any]]:
    """One row per size in cfg.scaling_sizes, each from cfg.scaling_sets generated sets (fixed seed). Encodes are
    timed interleaved across the sizes, and so are all the asks (so load drift cannot make one size look
    slower); ICR fields are null where the in-context prompt does not fit the window."""
    sizes: dict[int, _Size] = {}
    for n in cfg.scaling_sizes:
        rng = random.Random(f"{cfg.seed}-{n}")
        sets = [knowledge_set(rng, i, n) for i in range(cfg.scaling_sets)]
        sizes[n] = _prepare(reckoner, icr, sets, delta_dtype, delta_rank)
    if log is not None:
        print(f"bench: scaling, timing encodes of {list(sizes)} sentences", file=log, flush=True)
    encodes = measure_interleaved(
        {str(n): functools.partial(reckoner.encode, z.facts, with_recall=False) for n, z in sizes.items()},
        cfg.scaling_repeats, 1)
    # One question for every size: each size's own first question differs in length (a 256-sentence set's
    # entities and words are longer), which would make asks look slower with knowledge size when they are not.
    probe = sizes[min(sizes)].question
    fns: dict[str, Callable[[], object]] = {}
    for n, z in sizes.items():
        fns[f"ask/{n}"] = functools.partial(reckoner.answer, [probe], z.weights)
        if z.cache is not None:
            fns[f"icr/{n}"] = functools.partial(icr.answer_in_context, z.facts, [probe])
            fns[f"icr_prefix/{n}"] = functools.partial(icr.answer_from_context, z.cache, z.facts, [probe])
            fns[f"icr_prefix_prefill/{n}"] = functools.partial(icr.prefill_context, z.facts)
    asks = measure_interleaved(fns, cfg.scaling_ask_repeats, cfg.warmup)
    rows = []
    for n, z in sizes.items():
        if log is not None:
            print(f"bench: scaling, accuracy at {n} sentences ({len(z.sets)} sets)", file=log, flush=True)
        rows.append(_row(reckoner, icr, z, encodes[str(n)].median_ms, asks, n,
                         _accuracies(reckoner, icr, z, delta_dtype, delta_rank)))
    return rows


def _row(reckoner: Reckoner, icr: Reckoner, z: _Size, encode_ms: float, asks: dict[str, Timing], n: int,
         accuracy: tuple[float, float | None, int]) -> dict[str, Any]:
    acc_r, acc_i, total = accuracy
    window = context_window(icr)
    prefix_text = context_prefix(icr.config.prompt, z.facts)
    prefix_tokens = 1 + len(icr.tokenizer(prefix_text, add_special_tokens=False)["input_ids"])  # <bos> + facts
    labels = Counter(q.answer for ep in z.sets for q in ep.questions)

    def ms(name: str) -> float | None:
        key = f"{name}/{n}"
        return round(asks[key].median_ms, 3) if key in asks else None

    return {
        "n_facts": len(z.facts),
        "fact_tokens": fact_tokens(reckoner, z.facts, template=False),
        "encode_tokens": fact_tokens(reckoner, z.facts, template=True),
        "icr_prompt_tokens": z.tokens_needed,
        "context_window": window,
        "icr_fits": z.fits,
        "note": None if z.fits else f"the in-context prompt needs {z.tokens_needed} tokens; the window is {window}",
        "encode_ms": round(encode_ms, 3),
        "ask_ms": ms("ask"),
        "icr_ms": ms("icr"),
        "icr_prefix_ms": ms("icr_prefix"),
        "icr_prefix_prefill_ms": ms("icr_prefix_prefill"),
        "delta_bytes": len(z.blob),
        "kv_cache_bytes": z.cache.nbytes() if z.cache is not None else None,
        "kv_cache_bytes_needed": prefix_tokens * kv_bytes_per_token(icr),
        "accuracy_reckoning": round(acc_r, 4),
        "accuracy_icr": round(acc_i, 4) if acc_i is not None else None,
        "majority_label_share": round(labels.most_common(1)[0][1] / total, 4),
        "n_sets": len(z.sets),
        "n_questions": total,
        "mean_questions_per_set": round(statistics.mean(len(s.questions) for s in z.sets), 1),
    }
