"""Delta <-> safetensors bytes with metadata: format, model fingerprint, encode-config hash, checksum."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save
from torch import Tensor

DELTA_FORMAT = "reckoning-delta/1"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class DeltaError(ValueError):
    """A stored delta that must not be applied."""


class DeltaFormatError(DeltaError):
    pass


class FingerprintMismatch(DeltaError):
    pass


class ChecksumMismatch(DeltaError):
    pass


def _digest(tensors: Mapping[str, Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        if t.numel():
            h.update(t.view(torch.uint8).numpy().data)  # hashed through the buffer protocol, no copy
    return h.hexdigest()


def _stored(delta: Mapping[str, Tensor], dtype: str) -> dict[str, Tensor]:
    """The tensors as a blob of this dtype holds them (on the CPU)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
    return {k: v.detach().to("cpu", DTYPES[dtype]).contiguous() for k, v in delta.items()}


def round_trip(delta: Mapping[str, Tensor], dtype: str = "float32", device: str = "cpu") -> dict[str, Tensor]:
    """What loads(dumps(delta, ..., dtype)) returns, without making the bytes."""
    return {k: v.to(device, torch.float32) for k, v in _stored(delta, dtype).items()}


def dumps(delta: Mapping[str, Tensor], fingerprint: str, encode_hash: str, dtype: str = "float32") -> bytes:
    tensors = _stored(delta, dtype)
    meta = {"format": DELTA_FORMAT, "fingerprint": fingerprint, "encode": encode_hash,
            "dtype": dtype, "sha256": _digest(tensors)}
    return save(tensors, metadata=meta)


def loads(blob: bytes, fingerprint: str, encode_hash: str | None = None,
          device: str = "cpu", dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """Parse and verify a delta; raises a DeltaError subclass instead of returning bad weights."""
    try:
        header_len = int.from_bytes(blob[:8], "little")
        meta = json.loads(blob[8 : 8 + header_len]).get("__metadata__") or {}
        tensors = load(blob)
    except (SafetensorError, ValueError, UnicodeDecodeError, RuntimeError, AttributeError) as e:
        raise DeltaFormatError(f"not a delta blob: {e}") from e
    if meta.get("format") != DELTA_FORMAT:
        raise DeltaFormatError(f"unknown delta format {meta.get('format')!r}")
    if meta.get("fingerprint") != fingerprint:
        raise FingerprintMismatch("delta was made by another model")
    if encode_hash is not None and meta.get("encode") != encode_hash:
        raise FingerprintMismatch("delta was made with another encode config")
    if meta.get("sha256") != _digest(tensors):
        raise ChecksumMismatch("delta payload does not match its checksum")
    return {k: v.to(device, dtype) for k, v in tensors.items()}
