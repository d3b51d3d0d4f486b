"""A stored delta is checked against the model before it is merged: exact names, exact shapes, finite values."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

from reckoning_core.compression import low_rank
from reckoning_core.delta_check import DeltaShapeError, NonFiniteDelta, all_finite, check_delta
from reckoning_core.fast_weights import LORA_U, LORA_V
from reckoning_core.reckoner import Reckoner
from reckoning_core.serialization import DeltaError


@pytest.fixture(scope="module")
def reckoner(tiny_gpt2: Path) -> Reckoner:
    return Reckoner.from_pretrained(tiny_gpt2)


@pytest.fixture(scope="module")
def delta(reckoner: Reckoner) -> dict[str, Tensor]:
    return reckoner.encode(["Bob is blue.", "Anne is kind."], with_recall=False).delta


def _matrix(delta: dict[str, Tensor]) -> str:
    return next(n for n, t in delta.items() if t.dim() == 2)


def test_the_model_adapts_what_the_inner_loop_makes(reckoner: Reckoner, delta: dict[str, Tensor]) -> None:
    check_delta(delta, reckoner.adapted)  # dense
    check_delta(low_rank(delta, 2), reckoner.adapted)  # the service's RECKONING_DELTA_RANK form
    blob = reckoner.serialize_delta(delta)
    assert set(reckoner.deserialize_delta(blob)) == set(delta)


def _broadcastable(delta: dict[str, Tensor]) -> dict[str, Tensor]:
    # merge() would add this (1,) tensor to every element of the matrix
    return {**delta, _matrix(delta): torch.ones(1)}


def _transposed(delta: dict[str, Tensor]) -> dict[str, Tensor]:
    name = _matrix(delta)
    return {**delta, name: delta[name].T.contiguous()}


def _extra(delta: dict[str, Tensor]) -> dict[str, Tensor]:
    return {**delta, "transformer.wte.weight": torch.zeros(3, 3)}


def _missing(delta: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v for k, v in delta.items() if k != _matrix(delta)}


def _one_factor(delta: dict[str, Tensor]) -> dict[str, Tensor]:
    compact = low_rank(delta, 2)
    name = next(n for n in compact if n.endswith(LORA_U))
    return {k: v for k, v in compact.items() if k != name}


def _rank_mismatch(delta: dict[str, Tensor]) -> dict[str, Tensor]:
    compact = low_rank(delta, 2)
    u = next(n for n in compact if n.endswith(LORA_U))
    return {**compact, u: torch.zeros(compact[u].shape[0], 3)}


def _dense_and_factors(delta: dict[str, Tensor]) -> dict[str, Tensor]:
    compact = low_rank(delta, 2)
    target = next(n for n in compact if n.endswith(LORA_V))[: -len(LORA_V)]
    return {**compact, target: delta[target]}


def _integer(delta: dict[str, Tensor]) -> dict[str, Tensor]:
    name = _matrix(delta)
    return {**delta, name: delta[name].to(torch.int32)}


def _nan(delta: dict[str, Tensor]) -> dict[str, Tensor]:
    name = _matrix(delta)
    poisoned = delta[name].clone()
    poisoned[0, 0] = float("nan")
    return {**delta, name: poisoned}


def _inf(delta: dict[str, Tensor]) -> dict[str, Tensor]:
    name = next(n for n, t in delta.items() if t.dim() == 1)
    return {**delta, name: torch.full_like(delta[name], float("inf"))}


BAD = {
    "broadcastable (1,) tensor": (_broadcastable, DeltaShapeError, "shape"),
    "transposed matrix": (_transposed, DeltaShapeError, "shape"),
    "parameter the model does not adapt": (_extra, DeltaShapeError, "not a parameter this model adapts"),
    "adapted tensor missing": (_missing, DeltaShapeError, "lacks"),
    "one low-rank factor": (_one_factor, DeltaShapeError, "only one factor"),
    "factors of different ranks": (_rank_mismatch, DeltaShapeError, "expected"),
    "dense and factors": (_dense_and_factors, DeltaShapeError, "both dense and as factors"),
    "integer tensor": (_integer, DeltaShapeError, "not a float"),
    "NaN": (_nan, NonFiniteDelta, "NaN"),
    "infinity": (_inf, NonFiniteDelta, "infinity"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_a_bad_delta_is_refused_before_merging(reckoner: Reckoner, delta: dict[str, Tensor], kind: str) -> None:
    make, error, says = BAD[kind]
    bad = make(delta)
    with pytest.raises(error, match=says):
        check_delta(bad, reckoner.adapted)
    # Through the serving path too: a well-formed blob (valid header and checksum) holding it is refused.
    if kind != "integer tensor":  # the blob format itself stores float dtypes only
        with pytest.raises(DeltaError):
            reckoner.deserialize_delta(reckoner.serialize_delta(bad, dtype="float32"))


# --- the finiteness check: one float64 sum per tensor

STORED_DTYPES = [torch.float16, torch.bfloat16, torch.float32]  # what a blob holds, and what loads() returns
INF, NAN = float("inf"), float("nan")


@pytest.mark.parametrize("dtype", STORED_DTYPES, ids=str)
@pytest.mark.parametrize(
    "poison", [[NAN], [INF], [-INF], [INF, -INF], [NAN, INF, -INF]], ids=["nan", "inf", "-inf", "inf,-inf", "all"]
)
def test_any_nan_or_infinity_is_found(dtype: torch.dtype, poison: list[float]) -> None:
    tensor = torch.randn(64, 33).to(dtype)
    for i, value in enumerate(poison):
        tensor.view(-1)[17 * i + 5] = value
    assert not all_finite(tensor)
    assert not all_finite(tensor.T)  # not contiguous
    with pytest.raises(NonFiniteDelta, match="'w'"):
        check_delta({"w": tensor}, {"w": tuple(tensor.shape)})


@pytest.mark.parametrize("dtype", STORED_DTYPES, ids=str)
def test_max_magnitude_values_are_finite(dtype: torch.dtype) -> None:
    """A sum in the tensor's own dtype (or float32) would overflow to inf here; float64 cannot."""
    big = torch.finfo(dtype).max
    same_sign = torch.full((1 << 20,), big, dtype=dtype)
    if dtype != torch.float16:
        assert bool(torch.isinf(same_sign.sum(dtype=torch.float32)))  # what a float32 sum would say
    assert all_finite(same_sign)
    assert all_finite(-same_sign)
    mixed = same_sign.clone()
    mixed[::2] = -big
    assert all_finite(mixed)
    tiny = torch.full((4096,), torch.finfo(dtype).tiny, dtype=dtype)  # and the smallest normals
    assert all_finite(tiny) and all_finite(torch.zeros(0, dtype=dtype))


def test_float64_tensors_are_checked_element_by_element() -> None:
    big = torch.full((4,), torch.finfo(torch.float64).max, dtype=torch.float64)
    assert all_finite(big)  # a float64 sum of these overflows: never used for float64
    big[2] = NAN
    assert not all_finite(big)


class _Ops(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.ops.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def test_the_finiteness_check_is_one_reduction_per_tensor(reckoner: Reckoner, delta: dict[str, Tensor]) -> None:
    """isfinite().all() writes a bool tensor the size of the delta and reads it back (it dominated a profile of
    a cold load); the check is one float64 sum per tensor, nothing elementwise."""
    loaded = reckoner.deserialize_delta(reckoner.serialize_delta(delta, dtype="float16"))
    with _Ops() as seen:
        check_delta(loaded, reckoner.adapted)
    assert "isfinite" not in seen.ops, seen.ops
    assert [op for op in seen.ops if op != "_local_scalar_dense"] == ["sum"] * len(loaded), seen.ops
