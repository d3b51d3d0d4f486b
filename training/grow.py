"""`reckoning grow`: a deeper checkpoint that computes exactly what the shallower one did.

Each inserted block is a copy of the block before it with its residual output projections (attention and MLP)
set to zero, so the block starts as the identity: the grown model's logits equal the source's, and so do its
answers from any delta of the source's blocks. Training then has extra depth to use for multi-hop questions
while keeping what was learned. The learned inner-loop LRs of an inserted block start as its source block's, so
an encode also moves the new block's output projections away from zero: encodes are close to the source's,
not equal, until meta-training has tuned the new blocks.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import torch
from torch import nn

from reckoning_core.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

# family -> (path of the block list, the block's residual output projections, the config's layer-count field)
_LAYOUTS = {
    "gpt2": ("transformer.h", ("attn.c_proj", "mlp.c_proj"), "n_layer"),
    "llama": ("model.layers", ("self_attn.o_proj", "mlp.down_proj"), "num_hidden_layers"),
}


def _layout(model: nn.Module) -> tuple[str, tuple[str, ...], str]:
    kind = getattr(model.config, "model_type", "")
    if kind not in _LAYOUTS:
        raise ValueError(f"grow supports {sorted(_LAYOUTS)} models, not {kind!r}")
    return _LAYOUTS[kind]


def _renumber(params: dict[str, torch.Tensor], prefix: str, sources: list[int]) -> dict[str, torch.Tensor]:
    """Per-block entries (learned LRs, LoRA init) for the new block list: block j takes block sources[j]'s."""
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.(.*)$")
    out = {k: v for k, v in params.items() if not pattern.match(k)}
    for j, src in enumerate(sources):
        for k, v in params.items():
            m = pattern.match(k)
            if m and int(m.group(1)) == src:
                out[f"{prefix}.{j}.{m.group(2)}"] = v.detach().clone()
    return out


def grow(ckpt: Checkpoint, insert_after: list[int]) -> Checkpoint:
    """A copy of `ckpt` with an identity block inserted after each listed block (0-based, before growth)."""
    model = copy.deepcopy(ckpt.model)
    prefix, outputs, count_field = _layout(model)
    blocks = model.get_submodule(prefix)
    assert isinstance(blocks, nn.ModuleList)
    n = len(blocks)
    bad = [i for i in insert_after if not 0 <= i < n]
    if bad or not insert_after:
        raise ValueError(f"--insert-after {insert_after}: give block indices in 0..{n - 1}")
    sources: list[int] = []
    new_blocks: list[nn.Module] = []
    for i in range(n):
        new_blocks.append(blocks[i])
        sources.append(i)
        for _ in range(insert_after.count(i)):
            block = copy.deepcopy(blocks[i])
            for name in outputs:
                proj = block.get_submodule(name)
                with torch.no_grad():
                    for p in proj.parameters(recurse=False):
                        p.zero_()
            new_blocks.append(block)
            sources.append(i)
    parent_name, _, attr = prefix.rpartition(".")
    setattr(model.get_submodule(parent_name), attr, nn.ModuleList(new_blocks))
    for j, block in enumerate(new_blocks):  # the KV-cache slot each attention layer writes
        for module in block.modules():
            if hasattr(module, "layer_idx"):
                setattr(module, "layer_idx", j)  # noqa: B010 (a Module attribute, not a submodule)
    setattr(model.config, count_field, len(new_blocks))
    return Checkpoint(model, ckpt.tokenizer, ckpt.config, _renumber(ckpt.log_lrs, prefix, sources),
                      _renumber(ckpt.lora_init, prefix, sources), name=ckpt.name)


def grow_cmd(src: str | Path, dest: str | Path, insert_after: list[int]) -> Path:
    grown = grow(load_checkpoint(src), insert_after)
    n = len(grown.model.get_submodule(_layout(grown.model)[0]))  # type: ignore[arg-type]
    path = save_checkpoint(grown, dest)
    print(f"{src} -> {path}: {n} blocks (identity blocks after {insert_after})")
    return path
