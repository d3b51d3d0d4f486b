"""Select the adapted parameters, build fast-weight dicts and apply them with functional_call."""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.func import functional_call

from reckoning_core.config import FastWeightSpec

Params = dict[str, Tensor]

LORA_U = ".lora_U"
LORA_V = ".lora_V"


def adapted_names(model: nn.Module, spec: FastWeightSpec) -> list[str]:
    """Names of the base parameters the inner loop changes (directly or through low-rank factors)."""
    names = []
    for name, p in model.named_parameters():
        if spec.mode == "all":
            names.append(name)
        elif any(re.search(pat, name) for pat in spec.patterns):
            if spec.mode == "lora" and p.dim() != 2:
                continue
            names.append(name)
    if not names:
        raise ValueError(f"fast-weight selection {spec} matches no parameter of this model")
    return names


def base_params(model: nn.Module) -> Params:
    """Detached views of the model's parameters: the fixed point every delta is relative to."""
    return {n: p.detach() for n, p in model.named_parameters()}


def init_fast(model: nn.Module, spec: FastWeightSpec, lora_init: Mapping[str, Tensor] | None = None) -> Params:
    """The starting point of the inner loop: zero deltas (dense) or (U=0, V=lora_init) factors."""
    params = dict(model.named_parameters())
    fast: Params = {}
    for name in adapted_names(model, spec):
        p = params[name]
        if spec.mode == "lora":
            if lora_init is None or name + LORA_V not in lora_init:
                raise ValueError(f"missing LoRA init for {name}")
            fast[name + LORA_U] = torch.zeros(p.shape[0], spec.rank, dtype=p.dtype, device=p.device)
            fast[name + LORA_V] = lora_init[name + LORA_V].to(p.device, p.dtype)
        else:
            fast[name] = torch.zeros_like(p)
    return fast


def make_lora_init(model: nn.Module, spec: FastWeightSpec, seed: int = 0) -> Params:
    """Fixed random V factors (shipped in the checkpoint) so that every encode starts alike."""
    gen = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    out: Params = {}
    for name in adapted_names(model, spec):
        cols = params[name].shape[1]
        out[name + LORA_V] = torch.randn(spec.rank, cols, generator=gen) / cols**0.5
    return out


def merge(base: Mapping[str, Tensor], delta: Mapping[str, Tensor] | None) -> Params:
    """base + delta as a full parameter dict; the base tensors themselves are never touched."""
    out = dict(base)
    if not delta:
        return out
    for name, d in delta.items():
        if name.endswith(LORA_U):
            target = name[: -len(LORA_U)]
            v = delta[target + LORA_V]
            out[target] = out[target] + (d @ v).to(out[target].dtype)
        elif name.endswith(LORA_V):
            continue
        else:
            out[name] = out[name] + d.to(out[name].dtype)
    return out


def forward(model: nn.Module, params: Mapping[str, Tensor], input_ids: Tensor, attention_mask: Tensor | None,
            **kwargs: object) -> Tensor:
    """Logits of the model run with `params` instead of its own parameters. (B, T, V)"""
    out = functional_call(model, dict(params), (input_ids,), {"attention_mask": attention_mask, **kwargs},
                          tie_weights=True, strict=False)
    return out.logits


def delta_bytes(delta: Mapping[str, Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in delta.values())
