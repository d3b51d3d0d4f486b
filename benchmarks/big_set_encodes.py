"""Serve-time levers for knowledge sets past the training sizes, no meta-training: a scaled inner LR, and the sum
of per-chunk deltas in place of one joint encode. Accuracy only (no timings), on solver-labelled generated sets
drawn with their own seed (not the bench's scaling sets), so it is a tuning slice, not a held-out figure. Every
lever is relative to the learned LRs as trained: a model's own size scaling (lr_size_ref) is switched off here.

    python -m benchmarks.big_set_encodes --model models/reckoning-full --out results/big-set-encodes.json
    python -m benchmarks.big_set_encodes --sizes 128,256 --sets 6 --scales 1,1.5,2,3 --chunks 0 \
        --seed lr-check --out results/big-set-encodes-check.json
"""

from __future__ import annotations

import argparse
import json
import math
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import Tensor

from benchmarks.knowledge_sets import knowledge_set
from benchmarks.scaling import count_right
from reckoning_core.reckoner import Reckoner
from training.data.episode import Episode


def _with_lr_scale(reckoner: Reckoner, scale: float) -> Reckoner:
    """The same weights with every learned inner LR multiplied by `scale` at every set size (no size scaling)."""
    ckpt = reckoner.ckpt.with_lr_size_ref(0)
    ckpt = replace(ckpt, log_lrs={k: v + math.log(scale) for k, v in ckpt.log_lrs.items()})
    return Reckoner(ckpt, reckoner.device, reckoner.inner_autocast)


def _chunked_delta(reckoner: Reckoner, facts: list[str], chunk: int) -> dict[str, Tensor]:
    """Shuffled facts encoded `chunk` at a time, the deltas summed."""
    facts = list(facts)
    random.Random(0).shuffle(facts)
    total: dict[str, Tensor] = {}
    for i in range(0, len(facts), chunk):
        delta = reckoner.encode(facts[i:i + chunk], with_recall=False).delta
        total = {k: total[k] + v for k, v in delta.items()} if total else dict(delta)
    return total


def _accuracy(reckoner: Reckoner, sets: list[Episode], chunk: int | None) -> float:
    right = total = 0
    for ep in sets:
        facts = list(ep.facts)
        delta = (_chunked_delta(reckoner, facts, chunk) if chunk
                 else reckoner.encode(facts, with_recall=False).delta)
        got, n = count_right(reckoner.answer([q.text for q in ep.questions], delta), ep)
        right, total = right + got, total + n
    return right / total


def run(model: Path, sizes: list[int], scales: list[float], chunks: list[int], n_sets: int | None = None,
        seed: str = "big-set-encodes") -> dict[str, Any]:
    reckoner = _with_lr_scale(Reckoner.from_pretrained(model, device="cpu", torch_threads=1, inner_autocast="auto"),
                              1.0)
    rows = []
    for n in sizes:
        rng = random.Random(f"{seed}-{n}")
        sets = [knowledge_set(rng, i, n) for i in range(n_sets or (2 if n >= 128 else 6))]
        n_q = sum(len(ep.questions) for ep in sets)
        for scale in scales:
            acc = _accuracy(_with_lr_scale(reckoner, scale), sets, None)
            rows.append({"n_sentences": n, "lever": f"inner LR x{scale:g}", "accuracy": round(acc, 4), "n": n_q})
            print(rows[-1], flush=True)
        for chunk in chunks:
            if 0 < chunk < n:
                acc = _accuracy(reckoner, sets, chunk)
                rows.append({"n_sentences": n, "lever": f"sum of deltas of {chunk}-sentence chunks",
                             "accuracy": round(acc, 4), "n": n_q})
                print(rows[-1], flush=True)
    return {"model": str(model), "inner_autocast": reckoner.inner_autocast, "seed": seed, "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=Path("models/reckoning-full"))
    p.add_argument("--sizes", default="64,256")
    p.add_argument("--scales", default="1,2,4")
    p.add_argument("--chunks", default="64,32")  # 0: none
    p.add_argument("--sets", type=int, default=None, help="sets per size (default: 2 from 128 sentences, else 6)")
    p.add_argument("--seed", default="big-set-encodes", help="the sets' seed prefix")
    p.add_argument("--out", type=Path, default=Path("results/big-set-encodes.json"))
    a = p.parse_args()
    out = run(a.model, [int(x) for x in a.sizes.split(",")], [float(x) for x in a.scales.split(",")],
              [int(x) for x in a.chunks.split(",")], a.sets, a.seed)
    a.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
