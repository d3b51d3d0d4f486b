"""Where torch work runs: the RECKONING_DEVICE setting resolved to a device, and the inner loop's autocast."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch

DEVICE_ENV = "RECKONING_DEVICE"
AUTO = "auto"

InnerAutocast = Literal["off", "bf16", "fp16"]  # what the inner loop runs under
InnerAutocastSetting = Literal["auto", "off", "bf16", "fp16"]  # what a setting may ask for ("auto" is resolved)
AUTOCAST_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}
# The service's RECKONING_INNER_AUTOCAST default (Settings and Engine.load read it here): "auto", bf16 where the
# device runs it natively. oneDNN (bf16 CPU matmuls) compiles and caches kernels per matrix shape, and an inner
# loop's shapes follow each fact set's size: unpadded, the process grew ~1 GiB over 200 encodes of varied sets;
# padded (below), ~200 MiB against float32's ~90 (results/autocast-memory.json, `python -m
# benchmarks.autocast_memory`). On idle cores bf16 encoded a full theory in 237 ms against float32's 308
# (results/bench.json, results/inner-autocast/bench-quick-float32.json), and small varied sets about as fast.
# `reckoning eval` and a Reckoner built directly stay float32 ("off") unless asked.
DEFAULT_INNER_AUTOCAST: InnerAutocastSetting = "auto"
# Under autocast, fact rows are padded to a multiple of this many tokens, so the shapes (and oneDNN's cached
# kernels) are few whatever the fact sets' sizes.
AUTOCAST_WIDTH_MULTIPLE = 64
CPUINFO = Path("/proc/cpuinfo")
# x86 flags of native bf16 matmuls (AVX512-BF16 dot products, AMX tiles): without them torch emulates bf16 on the
# CPU, which is slower than float32, so "auto" stays off there.
CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def device_setting(explicit: str | None = None) -> str:
    """The device a command was asked for: `explicit`, else $RECKONING_DEVICE, else "auto"."""
    if explicit:
        return explicit
    return os.environ.get(DEVICE_ENV, "").strip() or AUTO


def resolve_device(name: str | torch.device | None = None) -> str:
    """"auto" (or None/empty) -> "cuda" when a CUDA device is usable, else "cpu"; any other name must be a
    device torch knows ("cpu", "cuda", "cuda:1", "meta", ...) and is returned as torch spells it."""
    text = str(name).strip() if name is not None else ""
    if text in ("", AUTO):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(text)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {text!r}: use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {text!r} asked for, but torch sees no CUDA device (use auto or cpu)")
    return str(device)


def check_autocast(mode: str) -> InnerAutocast:
    if mode not in ("off", "bf16", "fp16"):
        raise ValueError(f"inner autocast must be off, bf16 or fp16, not {mode!r}")
    return mode  # type: ignore[return-value]


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The CPU feature flags /proc/cpuinfo lists (its first `flags` line), empty where there is no such file."""
    try:
        text = cpuinfo.read_text()
    except FileNotFoundError:  # not Linux: no flags known, so nothing native is assumed
        return frozenset()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def resolve_autocast(mode: str, device: str, cpuinfo: Path = CPUINFO) -> InnerAutocast:
    """The inner loop's precision on `device` (a resolved device, see resolve_device).

    "auto" -> on CUDA bf16 where the GPU supports it, else fp16; on a CPU with native bf16 matmuls
    (CPU_BF16_FLAGS in /proc/cpuinfo) bf16; anywhere else "off" (emulated bf16 is slower than float32).
    Any other mode must be off, bf16 or fp16 and is returned as it is."""
    if mode not in ("auto", "off", "bf16", "fp16"):
        raise ValueError(f"inner autocast must be auto, off, bf16 or fp16, not {mode!r}")
    if mode != "auto":
        return check_autocast(mode)
    kind = torch.device(device).type
    if kind == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if kind == "cpu" and cpu_flags(cpuinfo) & CPU_BF16_FLAGS:
        return "bf16"
    return "off"


@contextlib.contextmanager
def inner_autocast(device: str, mode: InnerAutocast) -> Iterator[None]:
    """Mixed precision for the inner loop's forward and backward (a no-op when "off").

    Safe because only the matmuls drop precision: the fast weights, their updates and the learned LRs stay
    float32 (autocast never casts a leaf), and lm_loss upcasts the logits before the cross-entropy.
    """
    if mode == "off":
        yield
        return
    device_type = torch.device(device).type
    with torch.autocast(device_type=device_type, dtype=AUTOCAST_DTYPES[mode]):
        yield
