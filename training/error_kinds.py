"""Where a model's answers go wrong, by kind of question: provable (True/False) or Unknown, and for an Unknown
its kind (training.data.unknown_kinds: absent, rule, other) and whether its subject is stated in a fact. A
second breakdown (`by_proof`) splits the provable questions by the rules their proof uses: none (a stated
fact), positive rules only, or a rule with a negated condition (`If someone is not nice then ...`) or, failing
that, a negated conclusion (`Red things are not big.`).

Reads the JSON lines of `reckoning eval --predictions` and the same --data (and --split) the eval used:

    reckoning eval --model models/reckoning-full --data generated:1-4:200 --no-recall \\
        --predictions /tmp/p.jsonl --out /tmp/eval.json
    python -m training.error_kinds --data generated:1-4:200 --predictions /tmp/p.jsonl \\
        --out results/data/error-kinds--reckoning-full--gen-1-4.json
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from training.cli import read_eval_data
from training.data.episode import Episode
from training.data.pw_logic import Closure, Theory, parse_statement, solve
from training.data.unknown_kinds import unknown_kind


def question_kind(theory: Theory, statement: str, gold: str) -> str:
    """"provable" for a True/False label, else "unknown/KIND/stated" or "unknown/KIND/unstated" (the subject
    is, or is not, the subject of a stated fact)."""
    if gold != "Unknown":
        return "provable"
    stated = parse_statement(statement).subject in {lit.subject for lit, _ in theory.facts}
    return f"unknown/{unknown_kind(theory, statement)}/{'stated' if stated else 'unstated'}"


def proof_kind(closure: Closure, statement: str) -> str | None:
    """For a provable statement, the rules of its proof: "stated fact", "positive rules", "negated condition"
    (some rule has one) or "negated conclusion" (some rule concludes a negation); None when not provable."""
    _, proof = closure.answer(statement)
    if proof is None:
        return None
    rules = {r.text: r for r in closure.theory.rules}
    used = [rules[s] for s in proof.support if s in rules]
    if not used:
        return "stated fact"
    if any(not c.positive for r in used for c in r.conditions):
        return "negated condition"
    if any(not r.conclusion.positive for r in used):
        return "negated conclusion"
    return "positive rules"


def _scores(hits: dict[str, list[int]], wrong: dict[str, dict[str, int]]) -> dict[str, dict[str, Any]]:
    return {k: {"accuracy": round(sum(v) / len(v), 4), "n": len(v), "wrong_answers": dict(sorted(wrong[k].items()))}
            for k, v in sorted(hits.items())}


def by_kind(rows: Iterable[dict[str, Any]], episodes: Sequence[Episode]) -> dict[str, dict[str, dict[str, Any]]]:
    """Accuracy and what the wrong answers were, per question kind (`by_kind`) and, for the provable ones, per
    proof kind (`by_proof`). Every row must belong to an episode of `episodes` and be one of its questions (a
    mismatched --data is an error, not a silent miscount)."""
    theories = {ep.id: (Theory.parse(ep.facts), {q.text: q.answer for q in ep.questions}, len(ep.facts))
                for ep in episodes}
    closures: dict[str, Closure] = {}
    hits: dict[str, list[int]] = defaultdict(list)
    wrong: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    proof_hits: dict[str, list[int]] = defaultdict(list)
    proof_wrong: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        if row["theory"] not in theories:
            raise ValueError(f"prediction for theory {row['theory']!r}, which --data does not hold")
        theory, gold, n_facts = theories[row["theory"]]
        if row["n_facts"] != n_facts:  # kinds are judged against the whole theory
            raise ValueError(f"{row['theory']}: asked against {row['n_facts']} of its {n_facts} sentences; "
                             "error kinds read full-theory predictions only")
        if gold.get(row["question"]) != row["gold"]:
            raise ValueError(f"{row['theory']}: {row['question']!r} is not labelled {row['gold']} in --data")
        kind = question_kind(theory, row["question"], row["gold"])
        right = row["answer"] == row["gold"]
        hits[kind].append(int(right))
        if not right:
            wrong[kind][row["answer"]] += 1
        if kind == "provable":
            closure = closures.setdefault(row["theory"], solve(theory))
            pkind = proof_kind(closure, row["question"])
            if pkind is None:
                raise ValueError(f"{row['theory']}: {row['question']!r} is labelled {row['gold']} but not provable")
            proof_hits[pkind].append(int(right))
            if not right:
                proof_wrong[pkind][row["answer"]] += 1
    return {"by_kind": _scores(hits, wrong), "by_proof": _scores(proof_hits, proof_wrong)}


def summarize(data: str, split: str, predictions: Path) -> dict[str, Any]:
    """The by-kind accuracy of a predictions file, with what it was computed from."""
    rows = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines() if line]
    return {"data": data, "split": split, "predictions": str(predictions), **by_kind(rows, read_eval_data(data, split))}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="the --data the eval ran on")
    ap.add_argument("--split", choices=["all", "dev", "train"], default="all")
    ap.add_argument("--predictions", type=Path, required=True, help="reckoning eval --predictions output")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    text = json.dumps(summarize(args.data, args.split, args.predictions), indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
