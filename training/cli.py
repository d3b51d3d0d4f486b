"""`reckoning train` and `reckoning eval`: typed entry points the console script dispatches to."""

from __future__ import annotations

from pathlib import Path

import torch

from reckoning_core.device import device_setting
from reckoning_core.reckoner import Reckoner
from training.config import TrainConfig
from training.data.proofwriter import read_proofwriter
from training.evaluate import evaluate, write_json

DEFAULT_MODEL = Path("models/reckoning-proofwriter")


def train_cmd(config: str | None, overrides: list[str] | None = None) -> Path:
    from training.meta_train import train

    cfg = TrainConfig.load(config, overrides)
    best = train(cfg)
    print(f"best checkpoint: {best}")
    return best


def eval_cmd(model: str | Path = DEFAULT_MODEL, data: str | Path | None = None, setting: str = "full-theory",
             method: str = "reckoning", out: str | Path | None = None, limit: int | None = None,
             threads: int | None = None, device: str | None = None, recall: bool = True) -> dict:
    if threads:
        torch.set_num_threads(threads)
    if data is None:
        from training.data.episode import data_dir

        data = data_dir() / "proofwriter" / "owa_dev_natlang.jsonl"
    episodes = read_proofwriter(data)[:limit] if limit else read_proofwriter(data)
    reckoner = Reckoner.from_pretrained(model, device=device_setting(device))  # $RECKONING_DEVICE, else auto
    result = evaluate(reckoner, episodes, method=method, setting=setting,
                      with_recall=recall and method == "reckoning", progress=True)
    result = {**result, "model": str(model), "data": Path(data).name}
    write_json(result, out)
    return result
