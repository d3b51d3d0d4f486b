"""Resumable trainer state: optimizer tensors as safetensors, counters and RNG as JSON (never pickle)."""

from __future__ import annotations

import json
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
