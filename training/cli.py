"""`reckoning train` and `reckoning eval`: typed entry points the console script dispatches to."""

from __future__ import annotations

from pathlib import Path

import torch

from reckoning_core.reckoner import Reckoner
from training.config import TrainConfig
from training.data.depth5 import read_depth5_mixed
from training.data.episode import Episode
from training.data.proofwriter import read_proofwriter
from training.data.sampling import split_depth5
from training.evaluate import evaluate, write_json

DEFAULT_MODEL = Path("models/reckoning-proofwriter")


def train_cmd(config: str | None, overrides: list[str] | None = None) -> Path:
    from training.meta_train import train

    cfg = TrainConfig.load(config, overrides)
    best = train(cfg)
    print(f"best checkpoint: {best}")
    return best


def read_eval_data(path: str | Path, split: str = "all") -> list[Episode]:
    """Any of the shared formats: depth5_mixed (a JSON list of questions), owa_dev_natlang or owa_train (JSONL).
    `split` picks the held-out dev contexts (or the training ones) of a depth5_mixed file."""
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
             threads: int | None = None, device: str = "cpu", recall: bool = True, split: str = "all") -> dict:
    if threads:
        torch.set_num_threads(threads)
    if data is None:
        from training.data.episode import data_dir

        data = data_dir() / "proofwriter" / "owa_dev_natlang.jsonl"
    episodes = read_eval_data(data, split)
    episodes = episodes[:limit] if limit else episodes
    reckoner = Reckoner.from_pretrained(model, device=device)
    result = evaluate(reckoner, episodes, method=method, setting=setting,
                      with_recall=recall and method == "reckoning", progress=True)
    result = {**result, "model": str(model), "data": Path(data).name, "split": split}
    write_json(result, out)
    return result
