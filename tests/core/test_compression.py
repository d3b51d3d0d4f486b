"""Low-rank delta compression: exact at full rank, deterministic, applied by merge, smaller on the wire."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reckoning_core.compression import kept_energy, low_rank
from reckoning_core.fast_weights import LORA_U, LORA_V, merge
from reckoning_core.reckoner import Reckoner

FACTS = ["Bob is blue.", "If someone is blue then they are nice.", "Anne is kind.", "Anne is not red."]


def test_a_rank_r_matrix_is_recovered_and_vectors_are_kept() -> None:
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(64, 3, generator=gen) @ torch.randn(3, 48, generator=gen)  # rank 3
    delta = {"w": w, "b": torch.randn(48, generator=gen)}
    out = low_rank(delta, 3)
    assert set(out) == {"b", "w" + LORA_U, "w" + LORA_V}
    assert out["w" + LORA_U].shape == (64, 3) and out["w" + LORA_V].shape == (3, 48)
    base = {"w": torch.zeros(64, 48), "b": torch.zeros(48)}
    merged = merge(base, out)
    assert torch.allclose(merged["w"], w, atol=1e-4) and torch.equal(merged["b"], delta["b"])
    assert kept_energy(delta, 3) == pytest.approx(1.0, abs=1e-6)
    assert kept_energy(delta, 1) < 1.0


def test_compression_is_deterministic_and_skips_matrices_it_would_not_shrink() -> None:
    gen = torch.Generator().manual_seed(2)
    delta = {"w": torch.randn(32, 40, generator=gen), "small": torch.randn(4, 4, generator=gen)}
    a, b = low_rank(delta, 5), low_rank(delta, 5)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(a["small"], delta["small"])  # 5 * (4 + 4) >= 16: kept dense
    with pytest.raises(ValueError):
        low_rank(delta, 0)


def test_compressed_delta_round_trips_and_answers(tiny_gpt2: Path) -> None:
    reckoner = Reckoner.from_pretrained(tiny_gpt2)
    delta = reckoner.encode(FACTS, with_recall=False).delta
    compressed = low_rank(delta, 4)
    dense_blob = reckoner.serialize_delta(delta, "float16")
    blob = reckoner.serialize_delta(compressed, "float16")
    assert len(blob) < len(dense_blob)
    loaded = reckoner.deserialize_delta(blob)
    assert loaded.keys() == compressed.keys()
    questions = ["Bob is nice.", "Anne is red."]
    a = reckoner.answer(questions, loaded)
    b = reckoner.answer(questions, reckoner.merged(loaded))
    # the same answers; the scores agree to float rounding (the two paths may lay the factors out differently in
    # memory, and BLAS kernels then sum in another order: bit-equal on some CPUs, 1e-9 apart on others)
    assert [x.answer for x in a] == [x.answer for x in b]
    for x, y in zip(a, b, strict=True):
        assert x.scores is not None and y.scores is not None and x.scores.keys() == y.scores.keys()
        assert all(x.scores[k] == pytest.approx(y.scores[k], abs=1e-6) for k in x.scores)
