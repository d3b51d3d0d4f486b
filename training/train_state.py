"""Resumable trainer state: optimizer tensors as safetensors, counters and per-rank RNG as JSON (never pickle),
and the atomic save of a checkpoint folder."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

STATE_TENSORS = "trainer_state.safetensors"
STATE_JSON = "trainer_state.json"


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{pid}/{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}/{k}"] = v
    return tensors, {"scalars": scalars, "param_groups": sd["param_groups"]}


def save_state(path: Path, opt: torch.optim.Optimizer, info: dict[str, Any]) -> None:
    tensors, meta = _flatten_optimizer(opt)
    save_file(tensors, str(path / STATE_TENSORS))
    (path / STATE_JSON).write_text(json.dumps({**info, "optimizer": meta}, indent=1))


def load_state(path: Path, opt: torch.optim.Optimizer) -> dict[str, Any]:
    info = json.loads((path / STATE_JSON).read_text())
    meta = info.pop("optimizer")
    tensors = load_file(str(path / STATE_TENSORS))
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        pid, k = key.split("/", 1)
        state.setdefault(int(pid), {})[k] = v
    for key, v in meta["scalars"].items():
        pid, k = key.split("/", 1)
        state.setdefault(int(pid), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return info


def rng_to_json(state: tuple) -> list:
    return [state[0], list(state[1]), state[2]]


def rng_from_json(state: list) -> tuple:
    return (state[0], tuple(state[1]), state[2])


def rank_rng_state(saved: list[list], rank: int) -> tuple:
    """This rank's saved RNG state. A run resumed with more ranks than it saved gives the new ranks a state
    derived from rank 0's and their rank, so no two ranks ever draw the same episodes."""
    if rank < len(saved):
        return rng_from_json(saved[rank])
    digest = hashlib.sha256(json.dumps([saved[0], rank]).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big")).getstate()


def atomic_save(dest: Path, write: Callable[[Path], None]) -> None:
    """Write into DEST.tmp, then swap it in: an interrupted save never leaves a half-written checkpoint."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    old = dest.with_name(dest.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
