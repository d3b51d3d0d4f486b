"""What kind of Unknown questions the model is trained on, against the real ones of depth5_mixed_train.json.

An Unknown is about an entity absent from the knowledge ("absent"), or about a present entity and a statement
some rule concludes but never proves ("rule", the hard kind: a chain that does not fire), or about neither
("other"). `python -m training.data.unknown_kinds [--out F]` writes the shares of each for the real questions,
for training's depth5 episodes (real contexts, generator-chosen Unknowns) and for generated knowledge sets.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from training.data.depth5 import read_depth5_mixed
from training.data.episode import Episode, data_dir
from training.data.pw_gen import draw_lexicon, generate_full_episode, questions_for_full
from training.data.pw_logic import Theory, parse_statement, solve

KINDS = ("absent", "rule", "other")


def unknown_kind(theory: Theory, statement: str) -> str:
    lit = parse_statement(statement)
    if lit.subject not in theory.entities():
        return "absent"
    return "rule" if any(r.concludes(lit) for r in theory.rules) else "other"


def shares(episodes: Iterable[Episode]) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    for ep in episodes:
        theory = Theory.parse(ep.facts)
        counts.update(unknown_kind(theory, q.text) for q in ep.questions if q.answer == "Unknown")
    total = sum(counts.values())
    return {"n_unknown": total, **{k: round(counts[k] / total, 3) if total else None for k in KINDS}}


def training_depth5(contexts: list[Episode], rng: random.Random) -> list[Episode]:
    """Real contexts with every question the solver labels, as training's depth5 source draws them."""
    out = []
    for ep in contexts:
        lex = draw_lexicon(rng, ep.source.startswith("Rel"), 0, 0, 0, vocab="proofwriter")
        out.append(Episode(ep.id, ep.facts, tuple(questions_for_full(solve(Theory.parse(ep.facts)), lex, rng,
                                                                      ep.source)), ep.source))
    return out


def report(n_generated: int = 300, seed: int = 0) -> dict[str, Any]:
    real = read_depth5_mixed(data_dir() / "proofwriter" / "depth5_mixed_train.json")
    rng = random.Random(seed)
    generated = [generate_full_episode(rng, i, n_sentences=rng.randint(12, 30)) for i in range(n_generated)]
    return {
        "real depth5_mixed_train questions": shares(real),
        "training depth5 episodes (real contexts, generated Unknowns)": shares(training_depth5(real, rng)),
        f"generated knowledge sets of 12-30 sentences ({n_generated})": shares(generated),
        "kinds": {"absent": "subject not in the knowledge", "rule": "a rule concludes it, never proven",
                  "other": "a present subject, no rule concludes it"},
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("results/data/unknown_kinds.json"))
    args = ap.parse_args(argv)
    out = report()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
