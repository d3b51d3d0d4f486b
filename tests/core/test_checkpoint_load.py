"""load_checkpoint: gelu_new on the fused kernel, regrouped LR schedules, and the fingerprint a folder states."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from reckoning_core.checkpoint import RECKONING_JSON, load_checkpoint, save_checkpoint
from reckoning_core.reckoner import Reckoner

REPO = Path(__file__).resolve().parents[2]


def test_gelu_new_is_loaded_as_the_fused_equivalent_with_equal_logits(tiny_gpt2: Path, tmp_path: Path) -> None:
    path = tmp_path / "gelu-new"
    shutil.copytree(tiny_gpt2, path)
    cfg = json.loads((path / "config.json").read_text())
    cfg["activation_function"] = "gelu_new"
    (path / "config.json").write_text(json.dumps(cfg))

    ckpt = load_checkpoint(path)
    assert ckpt.model.config.activation_function == "gelu_pytorch_tanh"
    reference = AutoModelForCausalLM.from_pretrained(str(path), attn_implementation="eager").eval()
    assert reference.config.activation_function == "gelu_new"
    ids = torch.tensor([[1, 5, 9, 12, 7, 3]])
    with torch.no_grad():
        assert torch.allclose(ckpt.model(ids).logits, reference(ids).logits, atol=1e-5)
    assert ckpt.fingerprint() == load_checkpoint(path).fingerprint()


def test_changing_inner_steps_regroups_the_learned_lr_schedule(tiny_gpt2: Path) -> None:
    from dataclasses import replace

    from reckoning_core.checkpoint import regroup_lrs

    ckpt = load_checkpoint(tiny_gpt2)
    enc = ckpt.config.encode
    schedule = torch.tensor([0.4, 0.7, 0.3, 0.5]).log()
    ckpt.log_lrs = {n: schedule.clone() for n in ckpt.log_lrs}
    ckpt.config = replace(ckpt.config, encode=replace(enc, inner_steps=4))
    two = ckpt.with_config(replace(ckpt.config, encode=replace(ckpt.config.encode, inner_steps=2)))
    assert two.config.encode.inner_steps == 2 and set(two.log_lrs) == set(ckpt.log_lrs)
    for v in two.log_lrs.values():
        assert torch.allclose(v.exp(), torch.tensor([1.1, 0.8]))
    # the total LR is kept for any step count, and the round trip through more steps is exact
    for k in (1, 3, 8):
        assert torch.allclose(regroup_lrs(schedule, k).exp().sum(), torch.tensor(1.9))
    assert torch.allclose(regroup_lrs(regroup_lrs(schedule, 8), 4), schedule, atol=1e-6)
    # any other change of the encode config still starts the schedule afresh
    changed = replace(ckpt.config.encode, inner_steps=2, init_lr=enc.init_lr * 2)
    other = ckpt.with_config(replace(ckpt.config, encode=changed))
    assert all(torch.allclose(v.exp(), torch.full((2,), enc.init_lr * 2)) for v in other.log_lrs.values())


def stated_fingerprint(folder: Path) -> str:
    stated: str = json.loads((folder / RECKONING_JSON).read_text())["fingerprint"]
    return stated


@pytest.mark.parametrize("dtype", [None, torch.float16, torch.bfloat16])
def test_the_stated_fingerprint_is_the_one_the_folder_serves_with(
    tiny_gpt2: Path, tmp_path: Path, dtype: torch.dtype | None
) -> None:
    saved = save_checkpoint(load_checkpoint(tiny_gpt2), tmp_path / "saved", dtype=dtype)
    served = Reckoner.from_pretrained(saved).fingerprint
    assert stated_fingerprint(saved) == served
    if dtype is not None:  # the weights really were rounded: the in-memory model's fingerprint differs
        assert served != load_checkpoint(tiny_gpt2).fingerprint()


@pytest.mark.parametrize("folder", sorted(p.parent.name for p in (REPO / "models").glob("*/" + RECKONING_JSON)))
def test_every_shipped_model_states_the_fingerprint_it_serves_with(folder: str) -> None:
    path = REPO / "models" / folder
    assert stated_fingerprint(path) == load_checkpoint(path).fingerprint(), (
        f"{path}/reckoning.json states another fingerprint than the model serves with: re-save the folder "
        "with reckoning_core.checkpoint.save_checkpoint, or write load_checkpoint(path).fingerprint() into it"
    )
