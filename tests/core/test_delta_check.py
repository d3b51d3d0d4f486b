"""A stored delta is checked against the model before it is merged: exact names, exact shapes, finite values."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor

from reckoning_core.compression import low_rank
from reckoning_core.delta_check import DeltaShapeError, NonFiniteDelta, check_delta
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
