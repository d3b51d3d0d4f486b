"""In-process figures: encode, ask with and without a delta, in-context asks, amortization, batching."""

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

from benchmarks.config import BenchConfig
from benchmarks.timing import measure, measure_interleaved
from reckoning_core.batching import token_ids
from reckoning_core.reckoner import Reckoner
from service.engine import stored_form
from training.data.episode import Episode


def break_even(encode_ms: float, ask_ms: float, icr_ms: float) -> int | None:
    """Smallest N with encode + N*ask < N*icr; None when an in-context ask is never slower."""
    saving = icr_ms - ask_ms
    if saving <= 0:
        return None
    return math.floor(encode_ms / saving) + 1


def prompt_tokens(reckoner: Reckoner, text: str) -> int:
    return 1 + len(token_ids(reckoner.tokenizer, text))  # 1 = <bos>


def core_figures(
    reckoner: Reckoner, theory: Episode, cfg: BenchConfig, delta_dtype: str, delta_rank: int = 0
) -> dict[str, Any]:
    """encode_ms, ask_ms, plain_ms, icr_ms and what follows from them, for one full theory.

    `delta_dtype` / `delta_rank` are the service's storage defaults: the blob an HTTP ask loads."""
    facts = list(theory.facts)
    question = theory.questions[0].text
    encodes = measure_interleaved(
        {
            "encode": lambda: reckoner.encode(facts, with_recall=False),
            # what POST /encode spends in torch: the inner loop, the recall check and the stored form of the delta
            "encode_full": lambda: stored_form(reckoner, reckoner.encode(facts).delta, delta_dtype, delta_rank),
        },
        cfg.encode_repeats,
        cfg.warmup,
    )
    enc, enc_full = encodes["encode"], encodes["encode_full"]
    delta = reckoner.encode(facts, with_recall=False).delta
    blob, stored = stored_form(reckoner, delta, delta_dtype, delta_rank)
    weights = reckoner.merged(stored)  # what a hot id answers with (factors at a rank, else merged)
    asks = measure_interleaved(
        {
            # a hot knowledge id in the service: weights made ready once (at encode or first ask), then reused
            "ask": lambda: reckoner.answer([question], weights),
            "plain": lambda: reckoner.answer([question], None),
            "icr": lambda: reckoner.answer_in_context(facts, [question]),
            # the delta merged into the base weights on every call
            "ask_unmerged": lambda: reckoner.answer([question], stored),
            # a cold knowledge id in the service: verify and load the stored blob, merge, then answer
            "ask_from_blob": lambda: reckoner.answer([question], reckoner.merged(reckoner.deserialize_delta(blob))),
        },
        cfg.ask_repeats,
        cfg.warmup,
    )
    # SVD factorisation (when the default stores a rank), serialisation and the round trip of POST /encode
    ser = measure(lambda: stored_form(reckoner, delta, delta_dtype, delta_rank), max(5, cfg.encode_repeats), cfg.warmup)
    deser = measure(lambda: reckoner.deserialize_delta(blob), max(5, cfg.encode_repeats), cfg.warmup)
    encode_ms, ask_ms = enc.median_ms, asks["ask"].median_ms
    plain_ms, icr_ms = asks["plain"].median_ms, asks["icr"].median_ms
    kept = [f for f in dict.fromkeys(" ".join(f.split()) for f in facts) if f]
    return {
        "encode_ms": round(encode_ms, 3),
        "ask_ms": round(ask_ms, 3),
        "plain_ms": round(plain_ms, 3),
        "icr_ms": round(icr_ms, 3),
        "ask_overhead": round(ask_ms / plain_ms, 4),
        "icr_over_ask": round(icr_ms / ask_ms, 4),
        "break_even_questions": break_even(encode_ms, ask_ms, icr_ms),
        "delta_bytes": len(blob),
        "details": {
            "theory": {"id": theory.id, "n_facts": len(facts), "n_questions": len(theory.questions),
                       "question": question},
            "prompt_tokens": {
                "ask": prompt_tokens(reckoner, reckoner.config.prompt.question_prompt(question)),
                "icr": prompt_tokens(reckoner, reckoner.config.prompt.in_context_prompt(kept, question)),
            },
            "timings": {
                "encode": enc.to_json(),
                "encode_full": enc_full.to_json(),
                **{k: v.to_json() for k, v in asks.items()},
                "store_delta": ser.to_json(),
                "deserialize_delta": deser.to_json(),
            },
            "encode_full_ms": round(enc_full.median_ms, 3),
            "ask_from_blob_ms": round(asks["ask_from_blob"].median_ms, 3),
            "ask_unmerged_ms": round(asks["ask_unmerged"].median_ms, 3),
            "break_even_questions_full_encode": break_even(enc_full.median_ms, asks["ask_from_blob"].median_ms,
                                                           icr_ms),
            "delta_dtype": delta_dtype,
            "delta_rank": delta_rank,
            "delta_tensor_bytes": sum(t.numel() * t.element_size() for t in delta.values()),
        },
    }


def amortization(reckoner: Reckoner, theory: Episode, cfg: BenchConfig) -> dict[str, Any]:
    """Total wall time to answer N = 1..max questions about one knowledge set, one question per call:
    RECKONING = encode once + N asks, in-context = N asks with the facts in every prompt. Measured
    as running totals (not extrapolated), median per N over repeats. Batched variants (all N
    questions in one call) at powers of two show the best case of either method."""
    facts = list(theory.facts)
    n_max = cfg.amortization_max_n
    questions = [theory.questions[i % len(theory.questions)].text for i in range(n_max)]

    def reckoning_run() -> list[float]:
        started = time.perf_counter_ns()
        weights = reckoner.merged(reckoner.encode(facts, with_recall=False).delta)
        totals = []
        for q in questions:
            reckoner.answer([q], weights)
            totals.append((time.perf_counter_ns() - started) / 1e6)
        return totals

    def icr_run() -> list[float]:
        started = time.perf_counter_ns()
        totals = []
        for q in questions:
            reckoner.answer_in_context(facts, [q])
            totals.append((time.perf_counter_ns() - started) / 1e6)
        return totals

    reckoning_run()  # warm-up
    icr_run()
    runs_r, runs_i = [], []
    for _ in range(cfg.amortization_repeats):
        runs_r.append(reckoning_run())
        runs_i.append(icr_run())
    med = lambda runs, i: round(statistics.median(r[i] for r in runs), 3)  # noqa: E731
    reckoning_ms = [med(runs_r, i) for i in range(n_max)]
    icr_ms = [med(runs_i, i) for i in range(n_max)]
    crossover = next((i + 1 for i in range(n_max) if reckoning_ms[i] < icr_ms[i]), None)

    batched_n = [n for n in (1, 2, 4, 8, 16, 32, 64, 128, 256) if n <= n_max]
    b_reck: list[float] = []
    b_icr: list[float] = []

    def batched_pair(qs: list[str]) -> dict[str, Callable[[], object]]:
        return {
            "reckoning": lambda: reckoner.answer(qs, reckoner.merged(reckoner.encode(facts, with_recall=False).delta)),
            "icr": lambda: reckoner.answer_in_context(facts, qs),
        }

    for n in batched_n:
        times = measure_interleaved(batched_pair(questions[:n]), cfg.amortization_repeats, 1)
        b_reck.append(round(times["reckoning"].median_ms, 3))
        b_icr.append(round(times["icr"].median_ms, 3))
    return {
        "n": list(range(1, n_max + 1)),
        "reckoning_ms": reckoning_ms,
        "icr_ms": icr_ms,
        "crossover_n": crossover,
        "repeats": cfg.amortization_repeats,
        "batched": {"n": batched_n, "reckoning_ms": b_reck, "icr_ms": b_icr},
    }


def batched_ask(reckoner: Reckoner, theory: Episode, cfg: BenchConfig) -> dict[str, Any]:
    """n questions of one knowledge set in one call vs n single calls (the delta already made)."""
    n = cfg.batched_n
    questions = [theory.questions[i % len(theory.questions)].text for i in range(n)]
    weights = reckoner.merged(reckoner.encode(list(theory.facts), with_recall=False).delta)

    def singles() -> None:
        for q in questions:
            reckoner.answer([q], weights)

    times = measure_interleaved({"batched": lambda: reckoner.answer(questions, weights), "singles": singles},
                                cfg.batched_repeats, cfg.warmup)
    return {
        "n_questions": n,
        "batched_ms": round(times["batched"].median_ms, 3),
        "singles_ms": round(times["singles"].median_ms, 3),
        "speedup": round(times["singles"].median_ms / times["batched"].median_ms, 3),
    }
