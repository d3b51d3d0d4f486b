"""Checkpoint folder: HF model + tokenizer (save_pretrained layout) + reckoning.json + learned inner LRs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from reckoning_core.config import ReckoningConfig
from reckoning_core.fast_weights import Params, init_fast, make_lora_init
from reckoning_core.inner_loop import init_log_lrs
from reckoning_core.tokenizer import load_tokenizer

RECKONING_JSON = "reckoning.json"
STATE_FILE = "reckoning_state.safetensors"
_LR = "log_lr/"
_LORA = "lora_init/"


class CheckpointError(ValueError):
    """The folder is not a checkpoint we can load."""


@dataclass
class Checkpoint:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    config: ReckoningConfig
    log_lrs: Params = field(default_factory=dict)
    lora_init: Params = field(default_factory=dict)
    name: str = "model"

    def __post_init__(self) -> None:
        spec = self.config.encode.fast_weights
        if spec.mode == "lora" and not self.lora_init:
            self.lora_init = make_lora_init(self.model, spec)
        fast = init_fast(self.model, spec, self.lora_init)
        if not self.log_lrs:  # a plain model, or a new encode config: the LRs start at init_lr
            self.log_lrs = init_log_lrs(fast, self.config.encode)
            return
        missing, extra = sorted(set(fast) - set(self.log_lrs)), sorted(set(self.log_lrs) - set(fast))
        steps = self.config.encode.inner_steps
        wrong = sorted(n for n, v in self.log_lrs.items() if tuple(v.shape) != (steps,))
        if missing or extra or wrong:
            raise CheckpointError(
                f"learned inner LRs do not match the model's fast weights: missing {missing[:3]}, "
                f"unexpected {extra[:3]}, not of shape ({steps},) {wrong[:3]}")

    def fingerprint(self) -> str:
        """sha256 over weights, learned LRs, LoRA init, tokenizer vocabulary and config: the model's identity."""
        return _fingerprint(self.model.state_dict(), self.log_lrs, self.lora_init, self.tokenizer, self.config)

    def with_config(self, config: ReckoningConfig) -> Checkpoint:
        """Same weights under another config; learned LRs survive when the encode config does (the fact-length
        budget and the size scaling of the LRs aside), and are regrouped (`regroup_lrs`) when only the number of
        inner steps changes."""
        old = self.config.encode
        keep = config.encode == old
        log_lrs = self.log_lrs if keep else {}
        # the LRs belong to the fast weights and steps, not to the fact-length budget
        same_weights = replace(config.encode, inner_steps=old.inner_steps, max_fact_tokens=old.max_fact_tokens,
                               lr_size_ref=old.lr_size_ref) == old
        if not keep and same_weights:  # the very LRs when the steps are the same too (no round through regroup)
            log_lrs = (dict(self.log_lrs) if config.encode.inner_steps == old.inner_steps else
                       {n: regroup_lrs(v, config.encode.inner_steps) for n, v in self.log_lrs.items()})
        return replace(self, config=config, log_lrs=log_lrs, lora_init=self.lora_init if keep or same_weights else {})

    def with_lr_size_ref(self, lr_size_ref: int) -> Checkpoint:
        """Same weights and learned LRs, with the size scaling of the inner LRs set (EncodeConfig.lr_size_ref)."""
        return self.with_config(replace(self.config, encode=replace(self.config.encode, lr_size_ref=lr_size_ref)))


def _fingerprint(weights: Mapping[str, torch.Tensor], log_lrs: Params, lora_init: Params,
                 tokenizer: PreTrainedTokenizerBase, config: ReckoningConfig) -> str:
    h = hashlib.sha256()
    tensors = {**weights, **{_LR + k: v for k, v in log_lrs.items()}, **{_LORA + k: v for k, v in lora_init.items()}}
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    h.update(json.dumps(tokenizer.get_vocab(), sort_keys=True).encode())
    h.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    return h.hexdigest()


def regroup_lrs(log_lr: torch.Tensor, steps: int) -> torch.Tensor:
    """A learned per-step schedule (log LRs) spread over another number of steps with the same total LR
    at every fraction of the loop: step j of the new schedule gets the old cumulative LR between
    j/steps and (j+1)/steps, linearly interpolated. 4 steps -> 2 sums them pairwise (a step of lr a then
    one of lr b is, to first order, one of lr a + b); 2 -> 4 halves each."""
    lrs = log_lr.detach().float().exp()
    cum = torch.cat([lrs.new_zeros(1), lrs.cumsum(0)])  # cumulative LR at fractions 0, 1/K, ..., 1
    at = torch.linspace(0, len(lrs), steps + 1)
    lo = at.floor().long().clamp(max=len(lrs) - 1)
    cum_at = cum[lo] + (at - lo) * lrs[lo]
    return (cum_at[1:] - cum_at[:-1]).log().to(log_lr.dtype)


def save_checkpoint(ckpt: Checkpoint, path: str | Path, dtype: torch.dtype | None = None) -> Path:
    """Write the folder; `dtype` (e.g. torch.float16) shrinks the shipped weights.

    reckoning.json records the fingerprint the folder serves with: that of its weights as load_checkpoint
    reads them back (float32, after the round through `dtype`), so it equals what /readyz reports.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model = ckpt.model
    weights = {k: v.detach() for k, v in model.state_dict().items()}
    if dtype is not None:
        weights = {k: v.to(dtype) for k, v in weights.items()}
        model.save_pretrained(path, state_dict=weights)
    else:
        model.save_pretrained(path)
    ckpt.tokenizer.save_pretrained(path)
    log_lrs = {k: v.detach().float().contiguous() for k, v in ckpt.log_lrs.items()}
    lora_init = {k: v.detach().float().contiguous() for k, v in ckpt.lora_init.items()}
    save_file({**{_LR + k: v for k, v in log_lrs.items()}, **{_LORA + k: v for k, v in lora_init.items()}},
              str(path / STATE_FILE), metadata={"format": "reckoning-state"})
    loaded = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
    served = _fingerprint(loaded, log_lrs, lora_init, ckpt.tokenizer, ckpt.config)
    meta = {**ckpt.config.to_dict(), "fingerprint": served}
    (path / RECKONING_JSON).write_text(json.dumps(meta, indent=2) + "\n")
    return path


def set_lr_size_ref(path: str | Path, lr_size_ref: int) -> str:
    """Set a checkpoint folder's EncodeConfig.lr_size_ref (the size scaling of its inner LRs), weights and learned
    LRs untouched: reckoning.json is rewritten with the fingerprint the folder now serves with, which it returns."""
    path = Path(path)
    if not (path / RECKONING_JSON).exists():
        raise CheckpointError(f"{path} has no {RECKONING_JSON}: not a reckoning checkpoint")
    changed = load_checkpoint(path).with_lr_size_ref(lr_size_ref)
    fingerprint = changed.fingerprint()
    (path / RECKONING_JSON).write_text(json.dumps({**changed.config.to_dict(), "fingerprint": fingerprint},
                                                  indent=2) + "\n")
    return fingerprint


_SAME_FUNCTION_FASTER = {"gelu_new": "gelu_pytorch_tanh"}


def load_checkpoint(path: str | Path, device: str = "cpu", attn_implementation: str = "eager",
                    dtype: torch.dtype = torch.float32) -> Checkpoint:
    """Load a checkpoint folder, or a plain HF causal-LM folder with a default encode config."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a folder")
    if not (path / "config.json").exists():
        raise CheckpointError(f"{path} is neither a reckoning checkpoint nor a Hugging Face model folder "
                              "(no config.json)")
    hf_config = json.loads((path / "config.json").read_text())
    extra = {}
    if hf_config.get("activation_function") in _SAME_FUNCTION_FASTER:
        # the identical function (tanh-approximated GELU) in one fused kernel: ~7% off an encode here
        extra["activation_function"] = _SAME_FUNCTION_FASTER[hf_config["activation_function"]]
    model = AutoModelForCausalLM.from_pretrained(str(path), attn_implementation=attn_implementation, dtype=dtype,
                                                 **extra)
    model.to(device)  # type: ignore[arg-type]
    model.eval()
    tokenizer = load_tokenizer(path)
    if (path / RECKONING_JSON).exists():
        raw = json.loads((path / RECKONING_JSON).read_text())
        raw.pop("fingerprint", None)
        config = ReckoningConfig.from_dict(raw)
    else:
        config = ReckoningConfig()
    log_lrs: Params = {}
    lora: Params = {}
    if (path / STATE_FILE).exists():
        for k, v in load_file(str(path / STATE_FILE)).items():
            if k.startswith(_LR):
                log_lrs[k[len(_LR):]] = v.to(device)
            elif k.startswith(_LORA):
                lora[k[len(_LORA):]] = v.to(device)
    return Checkpoint(model, tokenizer, config, log_lrs, lora, name=path.name)
