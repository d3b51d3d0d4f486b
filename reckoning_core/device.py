"""Where torch work runs: the RECKONING_DEVICE setting resolved to a device, and the inner loop's autocast."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Literal

import torch

DEVICE_ENV = "RECKONING_DEVICE"
AUTO = "auto"

InnerAutocast = Literal["off", "bf16", "fp16"]
AUTOCAST_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


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
