"""load_checkpoint runs gelu_new checkpoints with the fused kernel of the same function."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from reckoning_core.checkpoint import load_checkpoint


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
