"""EncodeConfig.lr_size_ref: sets past the reference size encode with every inner LR scaled by sqrt(n / ref)."""

import hashlib
import json
import math
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from reckoning_core.checkpoint import Checkpoint, CheckpointError, load_checkpoint, set_lr_size_ref
from reckoning_core.config import EncodeConfig, ReckoningConfig
from reckoning_core.reckoner import Reckoner

FACTS = ["Bob is blue.", "Anne is kind.", "If someone is kind then they are nice.", "The cat sees the dog.",
         "Erin is not young.", "Gary is big.", "If something is big then it is red.", "Fiona is round."]


def _lrs_times(ckpt: Checkpoint, scale: float) -> Checkpoint:
    return replace(ckpt, log_lrs={n: v + math.log(scale) for n, v in ckpt.log_lrs.items()})


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert set(a) == set(b)
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-4)


def test_scale_is_one_up_to_the_reference_then_the_square_root() -> None:
    assert EncodeConfig().lr_scale(10_000) == 1.0  # off by default
    cfg = EncodeConfig(lr_size_ref=64)
    assert cfg.lr_scale(1) == cfg.lr_scale(64) == 1.0
    assert cfg.lr_scale(256) == pytest.approx(2.0)
    assert cfg.lr_scale(128) == pytest.approx(math.sqrt(2))
    with pytest.raises(ValueError, match="lr_size_ref"):
        EncodeConfig(lr_size_ref=-1)


def test_hash_is_unchanged_while_off_and_changes_when_on() -> None:
    off = EncodeConfig()
    before = asdict(off)
    del before["lr_size_ref"]
    assert off.hash() == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()
    assert EncodeConfig(lr_size_ref=64).hash() != off.hash()
    assert "lr_size_ref" not in ReckoningConfig().to_dict()["encode"]  # so no fingerprint moves either
    cfg = ReckoningConfig(encode=EncodeConfig(lr_size_ref=64))
    assert ReckoningConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_a_set_past_the_reference_encodes_as_with_scaled_lrs(tiny_gpt2: Path) -> None:
    ckpt = load_checkpoint(tiny_gpt2)
    scaled = Reckoner(ckpt.with_lr_size_ref(2), "cpu")
    # 8 facts against a reference of 2: every LR times sqrt(4) = 2
    _close(scaled.encode(FACTS, with_recall=False).delta,
           Reckoner(_lrs_times(ckpt, 2.0), "cpu").encode(FACTS, with_recall=False).delta)
    # up to the reference, nothing changes
    _close(scaled.encode(FACTS[:2], with_recall=False).delta,
           Reckoner(ckpt, "cpu").encode(FACTS[:2], with_recall=False).delta)
    # and the scale does change the delta (the check above is not vacuous)
    plain = Reckoner(ckpt, "cpu").encode(FACTS, with_recall=False).delta
    assert any(not torch.allclose(plain[n], v) for n, v in scaled.encode(FACTS, with_recall=False).delta.items())


def test_batched_encodes_scale_each_set_by_its_own_size(tiny_gpt2: Path) -> None:
    r = Reckoner(load_checkpoint(tiny_gpt2).with_lr_size_ref(3), "cpu")
    sets = [FACTS, FACTS[:2], FACTS[:5]]  # scales 1.63, 1 and 1.29
    for facts, delta in zip(sets, r.encode_many(sets), strict=True):
        _close(delta, r.encode(facts, with_recall=False).delta)


def test_turning_it_on_keeps_the_learned_lrs(tiny_gpt2: Path) -> None:
    ckpt = load_checkpoint(tiny_gpt2)
    on = ckpt.with_lr_size_ref(64)
    assert on.config.encode.lr_size_ref == 64
    for name, v in ckpt.log_lrs.items():
        assert torch.equal(on.log_lrs[name], v)  # bit for bit: the fingerprint hashes them


def test_configure_sets_it_on_a_folder_and_restamps_the_fingerprint(tiny_gpt2: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_gpt2, folder)
    before = load_checkpoint(folder)
    fingerprint = set_lr_size_ref(folder, 2)
    after = load_checkpoint(folder)
    assert after.config.encode.lr_size_ref == 2
    assert json.loads((folder / "reckoning.json").read_text())["fingerprint"] == fingerprint == after.fingerprint()
    assert fingerprint != before.fingerprint()
    for name, v in before.log_lrs.items():
        assert torch.equal(after.log_lrs[name], v)
    assert set_lr_size_ref(folder, 0) == before.fingerprint()  # off again: the folder serves as it did
    with pytest.raises(CheckpointError, match=r"reckoning\.json"):
        set_lr_size_ref(tmp_path, 2)
