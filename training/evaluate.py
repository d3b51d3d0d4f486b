"""Accuracy overall, by answer and by proof depth, full theory or proof-only, RECKONING or in-context."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor
from tqdm import tqdm

from reckoning_core.compression import at_rank
from reckoning_core.reckoner import Answer, AnswerWeights, Reckoner
from training.data.episode import Episode, Question


def knowledge_groups(ep: Episode, setting: str) -> list[tuple[list[str], list[Question]]]:
    """Questions grouped by the knowledge set they are asked against."""
    if setting == "full-theory":
        return [(list(ep.facts), list(ep.questions))]
    if setting != "proof-only":
        raise ValueError(f"setting must be full-theory or proof-only, not {setting!r}")
    groups: dict[tuple[str, ...], list[Question]] = defaultdict(list)
    for q in ep.questions:
        facts = tuple(q.proof_facts) if q.proof_facts else tuple(ep.facts)
        groups[facts].append(q)
    return [(list(k), v) for k, v in groups.items()]


def fits_in_context(reckoner: Reckoner, facts: list[str], questions: list[str]) -> bool:
    """Whether the longest in-context prompt (with its answer token) fits the model's position window."""
    limit = getattr(reckoner.model.config, "n_positions", None) or reckoner.model.config.max_position_embeddings
    prompt = reckoner.config.prompt
    longest = max(len(reckoner.tokenizer(prompt.in_context_prompt(facts, q))["input_ids"]) for q in questions)
    return longest + 2 <= limit  # + <bos> and the answer


SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


def size_bucket(n_facts: int) -> str:
    """Knowledge-set size as a bucket label: "1", "2-4", "5-8", ..., "33-64", "65+"."""
    lo = 1
    for hi in SIZE_BUCKETS:
        if n_facts <= hi:
            return str(hi) if lo == hi else f"{lo}-{hi}"
        lo = hi + 1
    return f"{lo}+"


def stored(reckoner: Reckoner, delta: dict[str, Tensor], rank: int, dtype: str | None) -> AnswerWeights:
    """What a delta answers with: as the inner loop made it (dtype None), or in the service's stored form
    (rank-r factors when rank > 0, at dtype), read back as the service reads it."""
    if dtype is None:
        return delta
    return reckoner.merged(reckoner.round_trip(at_rank(delta, rank), dtype))


def prediction_row(ep: Episode, facts: list[str], q: Question, a: Answer) -> dict[str, Any]:
    """What one question was asked against, its gold label and what the model answered, with every option's
    probability: a line of `reckoning eval --predictions`, for reading the errors."""
    return {"theory": ep.id, "n_facts": len(facts), "question": q.text, "gold": q.answer, "answer": a.answer,
            "correct": a.answer == q.answer, "depth": q.depth, "grammar": q.grammar,
            "scores": {k: round(v, 4) for k, v in (a.scores or {}).items()}}


def write_jsonl(rows: list[dict[str, Any]], out: str | Path) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def evaluate(reckoner: Reckoner, episodes: Sequence[Episode], method: str = "reckoning",
             setting: str = "full-theory", with_recall: bool = True, progress: bool = False,
             delta_rank: int = 0, delta_dtype: str | None = None,
             predictions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """`delta_dtype` set: answer from the delta's stored form (see `stored`), else from the exact delta.
    `predictions` given: one row per answered question is appended to it (see `prediction_row`)."""
    if method not in ("reckoning", "icr", "no-knowledge"):
        raise ValueError(f"method must be reckoning, icr or no-knowledge, not {method!r}")
    hits: dict[str, list[int]] = defaultdict(list)
    by_answer: dict[str, list[int]] = defaultdict(list)
    confusion: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))  # gold answer -> predicted -> n
    by_depth: dict[str, list[int]] = defaultdict(list)
    by_grammar: dict[str, list[int]] = defaultdict(list)
    by_size: dict[str, list[int]] = defaultdict(list)
    recalls: list[float] = []
    too_long = 0
    t0 = time.perf_counter()
    for ep in tqdm(episodes, disable=not progress, desc=f"eval {method} {setting}"):
        for facts, questions in knowledge_groups(ep, setting):
            texts = [q.text for q in questions]
            if method == "icr" and not fits_in_context(reckoner, facts, texts):
                too_long += len(questions)  # the facts do not fit the context window: no in-context answer
                continue
            if method == "icr":
                answers = reckoner.answer_in_context(facts, texts)
            elif method == "no-knowledge":
                answers = reckoner.answer(texts, None)
            else:
                enc = reckoner.encode(facts, with_recall=with_recall)
                if with_recall:
                    recalls.append(enc.recall)
                answers = reckoner.answer(texts, stored(reckoner, enc.delta, delta_rank, delta_dtype))
            for q, a in zip(questions, answers, strict=True):
                ok = int(a.answer == q.answer)
                hits["all"].append(ok)
                by_answer[q.answer].append(ok)
                confusion[q.answer][a.answer] += 1
                if q.depth is not None:
                    by_depth[str(q.depth)].append(ok)
                if q.grammar is not None:
                    by_grammar[q.grammar].append(ok)
                by_size[size_bucket(len(facts))].append(ok)
                if predictions is not None:
                    predictions.append(prediction_row(ep, facts, q, a))
    acc = lambda xs: round(sum(xs) / len(xs), 4) if xs else None  # noqa: E731
    out: dict[str, Any] = {
        "accuracy": acc(hits["all"]),
        "n_questions": len(hits["all"]),
        "n_theories": len(episodes),
        "by_answer": {k: acc(v) for k, v in sorted(by_answer.items())},
        "confusion": {gold: dict(sorted(got.items())) for gold, got in sorted(confusion.items())},
        "setting": setting,
        "method": method,
        "recall": round(sum(recalls) / len(recalls), 4) if recalls else None,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if method == "icr":
        out["n_questions_beyond_context"] = too_long
    if method == "reckoning" and delta_dtype is not None:
        out["delta_form"] = {"rank": delta_rank, "dtype": delta_dtype}
    out["by_size"] = {k: {"accuracy": acc(v), "n": len(v)}
                      for k, v in sorted(by_size.items(), key=lambda kv: int(kv[0].rstrip("+").split("-")[0]))}
    if by_grammar:
        out["by_grammar"] = {k: {"accuracy": acc(v), "n": len(v)} for k, v in sorted(by_grammar.items())}
    if by_depth and all(q.depth is not None for ep in episodes for q in ep.questions if q.answer != "Unknown"):
        out["by_depth"] = {k: {"accuracy": acc(v), "n": len(v)} for k, v in sorted(by_depth.items())}
    return out


def write_json(obj: dict[str, Any], out: str | Path | None) -> None:
    text = json.dumps(obj, indent=2)
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")
