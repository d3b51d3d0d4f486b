"""The in-context baseline users would run: the facts' KV cache prefilled once, then each question from it."""

from __future__ import annotations

import math
from typing import Any

from benchmarks.config import BenchConfig
from benchmarks.timing import measure_interleaved
from reckoning_core.reckoner import MergedWeights, Reckoner
from training.data.episode import Episode

KV_DTYPE_BYTES = 2  # kv_cache_bytes are counted in float16, as a serving stack would keep them


def break_even_prefix(encode_ms: float, ask_ms: float, prefill_ms: float, prefix_ms: float) -> int | None:
    """Smallest N with encode + N*ask < prefill + N*prefix_ask; None when it never comes."""
    upfront = encode_ms - prefill_ms
    if upfront < 0:
        return 1
    saving = prefix_ms - ask_ms
    if saving <= 0:
        return None
    return math.floor(upfront / saving) + 1


def context_window(reckoner: Reckoner) -> int:
    config = reckoner.model.config
    return int(getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", 0) or 0)


def kv_bytes_per_token(reckoner: Reckoner) -> int:
    """Keys and values of one token, every layer, in float16 (grouped-query models keep fewer heads)."""
    c = reckoner.model.config
    layers = getattr(c, "n_layer", None) or c.num_hidden_layers
    width = getattr(c, "n_embd", None) or c.hidden_size
    heads = getattr(c, "n_head", None) or c.num_attention_heads
    kv_heads = getattr(c, "num_key_value_heads", None) or heads
    return 2 * layers * (width // heads) * kv_heads * KV_DTYPE_BYTES


def prompt_tokens(reckoner: Reckoner, facts: list[str], questions: list[str]) -> int:
    """The longest in-context prompt over the questions, <bos> included."""
    kept = [f for f in dict.fromkeys(" ".join(f.split()) for f in facts) if f]
    return max(1 + len(reckoner.tokenizer(reckoner.config.prompt.in_context_prompt(kept, q),
                                          add_special_tokens=False)["input_ids"]) for q in questions)


def prefix_figures(reckoner: Reckoner, icr: Reckoner, theory: Episode, weights: MergedWeights,
                   cfg: BenchConfig) -> dict[str, Any]:
    """icr_prefix_prefill_ms, icr_prefix_ms (one question from the cache), kv_cache_bytes (fp16) for one theory,
    timed interleaved with a hot RECKONING ask and a plain in-context ask on the FT-ICR checkpoint."""
    facts = list(theory.facts)
    question = theory.questions[0].text
    everything = [q.text for q in theory.questions]
    cache = icr.prefill_context(facts)
    single = measure_interleaved(
        {
            "ask": lambda: reckoner.answer([question], weights),
            "icr": lambda: icr.answer_in_context(facts, [question]),
            "icr_prefix": lambda: icr.answer_from_context(cache, facts, [question]),
            "icr_prefix_prefill": lambda: icr.prefill_context(facts),
        },
        cfg.ask_repeats,
        cfg.warmup,
    )
    # every question of the theory in one call: the best case of each method
    batched = measure_interleaved(
        {
            "ask": lambda: reckoner.answer(everything, weights),
            "icr": lambda: icr.answer_in_context(facts, everything),
            "icr_prefix": lambda: icr.answer_from_context(cache, facts, everything),
        },
        max(3, cfg.ask_repeats // 5),
        1,
    )
    ask_ms, prefix_ms = single["ask"].median_ms, single["icr_prefix"].median_ms
    prefill_ms = single["icr_prefix_prefill"].median_ms
    return {
        "icr_prefix_prefill_ms": round(prefill_ms, 3),
        "icr_prefix_ms": round(prefix_ms, 3),
        "kv_cache_bytes": cache.nbytes(),
        "icr_prefix_over_ask": round(prefix_ms / ask_ms, 4),
        "icr_prefix": {
            "icr_model": icr.model_name,
            "icr_fingerprint": icr.fingerprint,
            "theory": theory.id,
            "prefix_tokens": cache.length,
            "prompt_tokens": prompt_tokens(icr, facts, [question]),
            "kv_bytes_per_token": kv_bytes_per_token(icr),
            "timings": {k: v.to_json() for k, v in single.items()},
            "same_window": {"ask_ms": round(ask_ms, 3), "icr_ms": round(single["icr"].median_ms, 3)},
            "batched": {
                "n_questions": len(everything),
                **{f"{k}_ms": round(v.median_ms, 3) for k, v in batched.items()},
                "icr_prefix_with_prefill_ms": round(batched["icr_prefix"].median_ms + prefill_ms, 3),
            },
        },
    }
