"""What a delta may hold before it is merged: exactly the adapted tensors, at their exact shapes, all finite.

merge() adds whatever it is given to the base weights, and torch broadcasts: a (1,) tensor under a matrix's
name would shift the whole matrix, an unknown name would add a parameter, a NaN would poison every answer.
A stored delta is therefore checked against the model before it is used, whatever its checksum or MAC says.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from reckoning_core.fast_weights import LORA_U, LORA_V
from reckoning_core.serialization import DeltaError


class DeltaShapeError(DeltaError):
    """A tensor the model does not adapt, a missing one, or one of the wrong shape."""


class NonFiniteDelta(DeltaError):
    """A delta holding NaN or infinity."""


Shapes = Mapping[str, tuple[int, ...]]  # adapted parameter name -> its shape


def check_delta(delta: Mapping[str, Tensor], adapted: Shapes, lora_rank: int | None = None) -> None:
    """Raise DeltaShapeError / NonFiniteDelta unless `delta` holds, for every adapted parameter, either one
    dense tensor of its exact shape or (for a matrix) rank-r factors `name.lora_U` (rows, r) and
    `name.lora_V` (r, cols), and nothing else. With `lora_rank` (the checkpoint adapts LoRA factors), the
    factors are required and r is that rank."""
    seen: set[str] = set()
    for name, tensor in delta.items():
        if not tensor.is_floating_point():
            raise DeltaShapeError(f"delta tensor {name!r} has dtype {tensor.dtype}, not a float type")
        if name.endswith((LORA_U, LORA_V)):
            target = name[: -len(LORA_U)] if name.endswith(LORA_U) else name[: -len(LORA_V)]
            _check_factors(delta, target, adapted, lora_rank)
            seen.add(target)
        elif name not in adapted:
            raise DeltaShapeError(f"delta tensor {name!r} is not a parameter this model adapts")
        elif lora_rank is not None:
            raise DeltaShapeError(f"delta tensor {name!r} is dense; this model adapts rank-{lora_rank} factors")
        elif tuple(tensor.shape) != adapted[name]:
            raise DeltaShapeError(f"delta tensor {name!r} has shape {tuple(tensor.shape)}, expected {adapted[name]}")
        elif name + LORA_U in delta or name + LORA_V in delta:
            raise DeltaShapeError(f"delta holds {name!r} both dense and as factors")
        else:
            seen.add(name)
    missing = sorted(set(adapted) - seen)
    if missing:
        raise DeltaShapeError(f"delta lacks {len(missing)} adapted tensor(s), e.g. {missing[0]!r}")
    for name, tensor in delta.items():
        if not all_finite(tensor):
            raise NonFiniteDelta(f"delta tensor {name!r} holds NaN or infinity")


def all_finite(tensor: Tensor) -> bool:
    """Whether every element is finite, in one reduction: the sum, taken in float64, of a tensor of at most
    32-bit floats.

    isfinite().all() writes a bool tensor as large as the input and reads it back; it dominated a profile of a
    cold load. A float64 sum is finite exactly when every element is: a NaN, or an infinity of either sign
    (and +inf with -inf gives NaN), makes it non-finite, and finite elements cannot overflow it (the largest
    float32/bfloat16 magnitude is 3.4e38; 2**60 of them sum to 3.9e56, far below float64's 1.8e308).
    float64 tensors (whose finite values can overflow their own sum) are checked element by element.
    float16 tensors, the stored form, are summed in float32, four times faster here: their largest magnitude
    is 65504, so only more than 5e33 elements could overflow a float32 sum."""
    if tensor.dtype == torch.float64 or tensor.is_complex():
        return bool(torch.isfinite(tensor).all())
    acc = torch.float32 if tensor.dtype == torch.float16 else torch.float64
    return math.isfinite(float(tensor.sum(dtype=acc)))


def _check_factors(delta: Mapping[str, Tensor], target: str, adapted: Shapes, lora_rank: int | None) -> None:
    shape = adapted.get(target)
    if shape is None:
        raise DeltaShapeError(f"delta factors for {target!r}, which is not a parameter this model adapts")
    if len(shape) != 2:
        raise DeltaShapeError(f"delta factors for {target!r}, which is not a matrix {shape}")
    u, v = delta.get(target + LORA_U), delta.get(target + LORA_V)
    if u is None or v is None:
        raise DeltaShapeError(f"delta holds only one factor of {target!r}")
    rank = u.shape[-1] if u.dim() == 2 else -1
    rows, cols = shape
    if u.dim() != 2 or v.dim() != 2 or tuple(u.shape) != (rows, rank) or tuple(v.shape) != (rank, cols):
        raise DeltaShapeError(
            f"delta factors of {target!r} have shapes {tuple(u.shape)} and {tuple(v.shape)}, "
            f"expected ({rows}, r) and (r, {cols})"
        )
    if not 1 <= rank <= min(rows, cols) or (lora_rank is not None and rank != lora_rank):
        raise DeltaShapeError(f"delta factors of {target!r} have rank {rank}")
