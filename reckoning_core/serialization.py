"""Delta <-> safetensors bytes with metadata: format, model fingerprint, encode-config hash, checksum."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Literal, Protocol

import torch
import xxhash
from safetensors import SafetensorError
from safetensors.torch import load, save
from torch import Tensor

DELTA_FORMAT = "reckoning-delta/1"
DeltaDtype = Literal["float32", "float16", "bfloat16"]
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# How a delta is stored unless a caller says otherwise; the service's RECKONING_DELTA_DTYPE default. float16
# halves every blob (store memory, GET and checksum time) and gave the same answer as float32 on all 1,000
# questions of the bench's dev slice; "float32" stores the inner loop's result exactly.
DEFAULT_DELTA_DTYPE: DeltaDtype = "float16"


class DeltaError(ValueError):
    """A stored delta that must not be applied."""


class DeltaFormatError(DeltaError):
    pass


class FingerprintMismatch(DeltaError):
    pass


class ChecksumMismatch(DeltaError):
    pass


# The payload checksum guards against corruption (bit flips, truncation, a wrong write), not against
# someone who can write the store: anyone who can write a blob can write its header too. xxh3-128 does
# that job at memory speed; sha256 took as long as answering a question when a cold delta is loaded.
# Blobs written with sha256 (before xxh3) still verify.
class _Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...
    def hexdigest(self) -> str: ...


CHECKSUMS: dict[str, Callable[[], _Hasher]] = {"xxh3_128": xxhash.xxh3_128, "sha256": hashlib.sha256}
CHECKSUM = "xxh3_128"


def _digest(tensors: Mapping[str, Tensor], algorithm: str = CHECKSUM) -> str:
    h = CHECKSUMS[algorithm]()
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


def round_trip(delta: Mapping[str, Tensor], dtype: str = DEFAULT_DELTA_DTYPE, device: str = "cpu") -> dict[str, Tensor]:
    """What loads(dumps(delta, ..., dtype)) returns, without making the bytes."""
    return {k: v.to(device, torch.float32) for k, v in _stored(delta, dtype).items()}


def dumps(delta: Mapping[str, Tensor], fingerprint: str, encode_hash: str, dtype: str = DEFAULT_DELTA_DTYPE) -> bytes:
    tensors = _stored(delta, dtype)
    meta = {"format": DELTA_FORMAT, "fingerprint": fingerprint, "encode": encode_hash,
            "dtype": dtype, CHECKSUM: _digest(tensors)}
    return save(tensors, metadata=meta)


def loads(blob: bytes, fingerprint: str, encode_hash: str | None = None,
          device: str = "cpu", dtype: torch.dtype = torch.float32, *, checksum: bool = True) -> dict[str, Tensor]:
    """Parse and verify a delta; raises a DeltaError subclass instead of returning bad weights.

    `checksum=False` skips only the payload checksum (a second pass over every byte), for a caller that has
    just authenticated all of `blob` by stronger means (the service's keyed MAC over its bytes): the format,
    fingerprint and encode-config checks still run, and a blob without a checksum is still refused."""
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
    algorithm = next((a for a in CHECKSUMS if a in meta), None)
    if algorithm is None:
        raise DeltaFormatError("delta has no payload checksum")
    if checksum and meta[algorithm] != _digest(tensors, algorithm):
        raise ChecksumMismatch("delta payload does not match its checksum")
    return {k: v.to(device, dtype) for k, v in tensors.items()}
