"""`reckoning train` and `reckoning eval`: typed entry points the console script dispatches to."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from reckoning_core.config import DEFAULT_MODEL_DIR
from reckoning_core.device import InnerAutocastSetting, device_setting
from reckoning_core.reckoner import Reckoner
from training.config import TrainConfig
from training.data.depth5 import read_depth5_mixed
from training.data.episode import Episode
from training.data.proofwriter import read_proofwriter
from training.data.sampling import split_depth5
from training.evaluate import evaluate, write_json, write_jsonl

DEFAULT_MODEL = DEFAULT_MODEL_DIR


def train_cmd(config: str | None, overrides: list[str] | None = None) -> Path:
    from training.meta_train import train

    cfg = TrainConfig.load(config, overrides)
    best = train(cfg)
    print(f"best checkpoint: {best}")
    return best


GENERATED_SEED = 20261130  # evaluation sets: a seed no training stream uses


def generated_sets(spec: str) -> list[Episode]:
    """`generated:SIZES:N`: solver-labelled full-language sets from the generator, all grammars in turn.
    SIZES is a range (`1-4`: N sets, sizes drawn uniformly), a list (`1,2,4,8`: N sets of each size) or
    `onehop` (N sets of 2-6 sentences whose rules fire on stated facts: every proof is one step or none)."""
    from training.data.pw_gen import GRAMMARS, generate_full_episode, generate_onehop_full

    parts = spec.split(":")
    if len(parts) != 3 or parts[0] != "generated":
        raise SystemExit(f"--data {spec!r}: expected generated:SIZES:N, e.g. generated:1-4:200")
    rng = random.Random(GENERATED_SEED)
    n = int(parts[2])
    if parts[1] == "onehop":
        return [generate_onehop_full(rng, i, grammar=GRAMMARS[i % len(GRAMMARS)]) for i in range(n)]
    if "-" in parts[1]:
        lo, hi = (int(x) for x in parts[1].split("-"))
        sizes = [rng.randint(lo, hi) for _ in range(n)]
    else:
        sizes = [int(x) for x in parts[1].split(",") for _ in range(n)]
    return [generate_full_episode(rng, i, n_sentences=size, grammar=GRAMMARS[i % len(GRAMMARS)])
            for i, size in enumerate(sizes)]


def read_eval_data(path: str | Path, split: str = "all") -> list[Episode]:
    """Any of the shared formats: depth5_mixed (a JSON list of questions), owa_dev_natlang or owa_train (JSONL),
    or `generated:SIZES:N` (see generated_sets). `split` picks the held-out dev contexts (or the training
    ones) of a depth5_mixed file."""
    if str(path).startswith("generated:"):
        return generated_sets(str(path))
    with open(path, encoding="utf-8") as f:
        head = f.read(1).strip() or f.read(64).strip()[:1]
    if head == "[":
        episodes = read_depth5_mixed(path)
        if split == "all":
            return episodes
        train, dev = split_depth5(episodes)
        return dev if split == "dev" else train
    if split != "all":
        raise SystemExit(f"--split {split} applies to depth5_mixed files only, not {Path(path).name}")
    return read_proofwriter(path)


def eval_cmd(model: str | Path = DEFAULT_MODEL, data: str | Path | None = None, setting: str = "full-theory",
             method: str = "reckoning", out: str | Path | None = None, limit: int | None = None,
             threads: int | None = None, device: str | None = None, recall: bool = True, split: str = "all",
             inner_autocast: InnerAutocastSetting = "off", delta_rank: int = 0,
             delta_dtype: str | None = None, predictions: str | Path | None = None) -> dict:
    if delta_rank < 0 or (delta_rank and delta_dtype is None):
        raise SystemExit(f"--delta-rank {delta_rank}: a rank >= 1 applies to a stored form; give --delta-dtype too")
    if threads:
        torch.set_num_threads(threads)
    if data is None:
        from training.data.episode import data_dir

        data = data_dir() / "proofwriter" / "owa_dev_natlang.jsonl"
    episodes = read_eval_data(data, split)
    episodes = episodes[:limit] if limit else episodes
    reckoner = Reckoner.from_pretrained(model, device=device_setting(device),  # $RECKONING_DEVICE, else auto
                                        inner_autocast=inner_autocast)
    rows: list[dict] | None = [] if predictions else None
    result = evaluate(reckoner, episodes, method=method, setting=setting,
                      with_recall=recall and method == "reckoning", progress=True,
                      delta_rank=delta_rank, delta_dtype=delta_dtype, predictions=rows)
    if predictions and rows is not None:
        write_jsonl(rows, predictions)
    name = str(data) if str(data).startswith("generated:") else Path(data).name
    result = {**result, "model": str(model), "data": name, "split": split}
    if reckoner.inner_autocast != "off":  # a float32 run's JSON stays as it was
        result["inner_autocast"] = reckoner.inner_autocast
    write_json(result, out)
    return result
