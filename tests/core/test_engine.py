"""Checkpoint loading, encode purity, answering, delta serialization and knowledge ids."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from reckoning_core.checkpoint import CheckpointError, load_checkpoint
from reckoning_core.knowledge_ids import knowledge_id, normalize_facts
from reckoning_core.reckoner import Reckoner
from reckoning_core.serialization import ChecksumMismatch, DeltaFormatError, FingerprintMismatch

FACTS = ["Bob is blue.", "If someone is blue then they are nice.", "Anne is kind."]


@pytest.fixture(scope="module")
def reckoner(tiny_gpt2: Path) -> Reckoner:
    return Reckoner.from_pretrained(tiny_gpt2)


def test_encode_never_mutates_base_parameters(reckoner: Reckoner) -> None:
    before = {n: p.detach().clone() for n, p in reckoner.model.named_parameters()}
    result = reckoner.encode(FACTS)
    assert result.n_facts == 3 and 0.0 <= result.recall <= 1.0
    assert any(t.abs().sum() > 0 for t in result.delta.values())
    for n, p in reckoner.model.named_parameters():
        assert torch.equal(p, before[n]), n


def test_encode_is_deterministic(reckoner: Reckoner) -> None:
    a, b = reckoner.encode(FACTS), reckoner.encode(list(reversed(FACTS)))
    for k in a.delta:
        assert torch.equal(a.delta[k], b.delta[k])


def test_delta_round_trip_is_bit_exact(reckoner: Reckoner) -> None:
    delta = reckoner.encode(FACTS).delta
    back = reckoner.deserialize_delta(reckoner.serialize_delta(delta, dtype="float32"))
    assert set(back) == set(delta)
    for k, v in delta.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v)
    half = reckoner.deserialize_delta(reckoner.serialize_delta(delta, dtype="float16"))
    for k, v in delta.items():
        assert torch.equal(half[k], v.half().float())


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_round_trip_equals_loading_the_serialized_delta(reckoner: Reckoner, dtype: str) -> None:
    delta = reckoner.encode(FACTS, with_recall=False).delta
    loaded = reckoner.deserialize_delta(reckoner.serialize_delta(delta, dtype))
    direct = reckoner.round_trip(delta, dtype)
    assert loaded.keys() == direct.keys() and all(torch.equal(loaded[k], direct[k]) for k in loaded)
    with pytest.raises(ValueError, match="dtype"):
        reckoner.round_trip(delta, "int8")


def test_wrong_fingerprint_and_corrupted_deltas_are_refused(reckoner: Reckoner, tiny_llama: Path) -> None:
    blob = reckoner.serialize_delta(reckoner.encode(FACTS).delta)
    other = Reckoner.from_pretrained(tiny_llama)
    with pytest.raises(FingerprintMismatch):
        other.deserialize_delta(blob)
    corrupted = bytearray(blob)
    corrupted[-5] ^= 0xFF  # flip bits inside the last tensor's payload
    with pytest.raises(ChecksumMismatch):
        reckoner.deserialize_delta(bytes(corrupted))
    with pytest.raises(DeltaFormatError):
        reckoner.deserialize_delta(b"not a safetensors blob at all")
    with pytest.raises(DeltaFormatError):
        reckoner.deserialize_delta(blob[: len(blob) // 2])



def test_the_checksum_is_skipped_only_when_asked_and_nothing_else_is(reckoner: Reckoner, tiny_llama: Path) -> None:
    """checksum=False is for a blob the caller authenticated byte by byte (the service's MAC): the payload
    checksum is not computed, every other check still runs."""
    from reckoning_core import serialization as ser

    delta = reckoner.encode(FACTS, with_recall=False).delta
    blob = reckoner.serialize_delta(delta, "float16")
    corrupted = bytearray(blob)
    corrupted[-5] ^= 0xFF
    with pytest.raises(ChecksumMismatch):  # the default, everywhere
        reckoner.deserialize_delta(bytes(corrupted))
    with pytest.raises(ChecksumMismatch):
        ser.loads(bytes(corrupted), reckoner.fingerprint, reckoner.encode_hash)
    unchecked = reckoner.deserialize_delta(bytes(corrupted), checksum=False)  # not read: the flip goes through
    assert any(not torch.equal(unchecked[k], v) for k, v in reckoner.deserialize_delta(blob).items())
    with pytest.raises(FingerprintMismatch):
        Reckoner.from_pretrained(tiny_llama).deserialize_delta(blob, checksum=False)
    with pytest.raises(DeltaFormatError):
        reckoner.deserialize_delta(blob[: len(blob) // 2], checksum=False)
    meta = json.loads(blob[8 : 8 + int.from_bytes(blob[:8], "little")])["__metadata__"]
    from safetensors.torch import save

    unsummed = save(ser._stored(delta, "float16"), metadata={k: v for k, v in meta.items() if k != ser.CHECKSUM})
    with pytest.raises(DeltaFormatError, match="checksum"):
        reckoner.deserialize_delta(unsummed, checksum=False)


def test_payload_checksum_is_xxh3_and_blobs_written_with_sha256_still_verify(reckoner: Reckoner) -> None:
    import json

    from safetensors.torch import save

    from reckoning_core import serialization as ser

    delta = reckoner.encode(FACTS).delta
    blob = reckoner.serialize_delta(delta, "float16")
    meta = json.loads(blob[8 : 8 + int.from_bytes(blob[:8], "little")])["__metadata__"]
    assert set(meta) >= {"xxh3_128", "fingerprint", "encode", "dtype"} and "sha256" not in meta
    tensors = ser._stored(delta, "float16")

    def legacy(checksums: dict[str, str]) -> bytes:
        base = {k: meta[k] for k in ("format", "fingerprint", "encode", "dtype")}
        return save(tensors, metadata={**base, **checksums})

    old = legacy({"sha256": ser._digest(tensors, "sha256")})  # what earlier versions stored
    loaded = reckoner.deserialize_delta(old)
    assert all(torch.equal(loaded[k], reckoner.deserialize_delta(blob)[k]) for k in loaded)
    with pytest.raises(ChecksumMismatch):
        reckoner.deserialize_delta(legacy({"sha256": ser._digest(tensors, "xxh3_128")}))
    with pytest.raises(DeltaFormatError, match="checksum"):
        reckoner.deserialize_delta(legacy({}))


def test_knowledge_id_is_order_insensitive_and_content_addressed(reckoner: Reckoner) -> None:
    a = reckoner.knowledge_id(FACTS)
    assert a == reckoner.knowledge_id(list(reversed(FACTS)))
    assert a == reckoner.knowledge_id([" Bob  is blue. ", *FACTS[1:], "Bob is blue."])  # whitespace, duplicate
    assert a != reckoner.knowledge_id(["Bob is red.", *FACTS[1:]])
    assert a != knowledge_id("another-model", reckoner.encode_hash, FACTS)
    # NFC: a composed and a decomposed é are the same fact
    assert normalize_facts(["Caf\u00e9 is open."]) == normalize_facts(["Cafe\u0301 is open."])
    with pytest.raises(ValueError):
        reckoner.knowledge_id(["  ", ""])


def test_scores_are_probabilities_with_and_without_delta(reckoner: Reckoner) -> None:
    delta = reckoner.encode(FACTS).delta
    for d in (None, delta):
        answers = reckoner.answer(["Bob is nice.", "Anne is not kind."], d)
        for a in answers:
            assert a.answer in ("True", "False", "Unknown")
            assert a.scores is not None and abs(sum(a.scores.values()) - 1.0) < 1e-5
        multi = reckoner.answer(["Bob is nice."], d, choices=["very much so", "no"])
        assert abs(sum(multi[0].scores.values()) - 1.0) < 1e-5  # type: ignore[union-attr]
    plain = reckoner.answer(["Bob is nice."], None)[0].scores
    adapted = reckoner.answer(["Bob is nice."], delta)[0].scores
    assert plain != adapted


def test_multi_token_choice_scores_match_single_forward(reckoner: Reckoner) -> None:
    # scoring two single-token choices through the general (multi-token) path gives the same numbers
    from reckoning_core.answer import score_choices

    fast = score_choices(reckoner.model, reckoner.base, reckoner.tokenizer, ["Question: x\nAnswer:"], ["True", "False"])
    slow = score_choices(reckoner.model, reckoner.base, reckoner.tokenizer, ["Question: x\nAnswer:"],
                         ["True", "False", "True False"])
    ratio_fast = fast[0, 0] / fast[0, 1]
    ratio_slow = slow[0, 0] / slow[0, 1]
    assert torch.allclose(ratio_fast, ratio_slow, rtol=1e-4)


def test_generation_respects_max_new_tokens(tiny_gpt2: Path) -> None:
    from reckoning_core.answer import generate_ids

    r = Reckoner.from_pretrained(tiny_gpt2)
    r.labels = None
    out = r.answer(["Bob is nice.", "A longer question about Anne?"], None, max_new_tokens=3)
    assert all(a.scores is None and isinstance(a.answer, str) for a in out)
    ids = generate_ids(r.model, r.base, r.tokenizer, ["Bob is nice.", "A longer question?"], max_new_tokens=3)
    assert all(len(row) <= 3 for row in ids)


def test_any_utf8_tokenizes(reckoner: Reckoner) -> None:
    text = "Zoë is 🙂 — 日本語 \x00 \u200b ü"
    ids = reckoner.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert reckoner.tokenizer.decode(ids) == text
    assert reckoner.encode([text]).n_facts == 1


def test_plain_hf_folder_loads_with_default_config(tiny_gpt2: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    shutil.copytree(tiny_gpt2, plain)
    (plain / "reckoning.json").unlink()
    (plain / "reckoning_state.safetensors").unlink()
    ckpt = load_checkpoint(plain)
    assert ckpt.config.labels is None and ckpt.config.encode.inner_steps >= 1
    assert set(ckpt.log_lrs)  # fresh learned LRs for the default selection


def test_folder_that_is_not_a_model_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="neither"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="not a folder"):
        load_checkpoint(tmp_path / "missing")


def test_checkpoint_round_trip_keeps_fingerprint_and_lrs(tiny_gpt2: Path, tmp_path: Path) -> None:
    from reckoning_core.checkpoint import save_checkpoint

    ckpt = load_checkpoint(tiny_gpt2)
    for v in ckpt.log_lrs.values():
        v.add_(0.25)
    save_checkpoint(ckpt, tmp_path / "again")
    again = load_checkpoint(tmp_path / "again")
    assert again.fingerprint() == ckpt.fingerprint()
    meta = json.loads((tmp_path / "again" / "reckoning.json").read_text())
    assert meta["fingerprint"] == ckpt.fingerprint() and meta["format_version"] == 1
    for k, v in ckpt.log_lrs.items():
        assert torch.equal(again.log_lrs[k], v)
