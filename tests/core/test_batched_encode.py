"""Batched encodes: every set's delta from one vmapped inner loop equals its own encode."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from reckoning_core.batched_encode import stack_sets
from reckoning_core.batching import packed_fact_batch
from reckoning_core.checkpoint import load_checkpoint
from reckoning_core.inner_loop import fact_loss
from reckoning_core.reckoner import Reckoner

SETS = [
    ["Bob is blue."],
    ["Anne is kind.", "If someone is nice and blue then they are round.", "Bob is blue.", "K is the uncle of C."],
    ["Anne is kind.", "Bob is blue. Anne is kind. Bob is blue. Anne is kind. Bob is blue. Anne is kind."],
]


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 1e-6) -> None:
    assert set(a) == set(b)
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=atol, rtol=1e-4)


@pytest.mark.parametrize("arch", ["tiny_gpt2", "tiny_llama"])
def test_each_set_equals_its_single_encode(arch: str, request: pytest.FixtureRequest) -> None:
    r = Reckoner.from_pretrained(request.getfixturevalue(arch), device="cpu")
    batched = r.encode_many(SETS)
    assert len(batched) == len(SETS)
    for facts, delta in zip(SETS, batched, strict=True):
        _close(delta, r.encode(facts, with_recall=False).delta)
    _close(r.encode_many(SETS[1:2])[0], batched[1])  # batch of one


def test_adam_inner_loop_batches_too(tiny_gpt2: Path) -> None:
    ckpt = load_checkpoint(tiny_gpt2)
    ckpt = ckpt.with_config(replace(ckpt.config, encode=replace(ckpt.config.encode, optimizer="adam")))
    r = Reckoner(ckpt, "cpu")
    for facts, delta in zip(SETS, r.encode_many(SETS), strict=True):
        # Adam divides by the gradient's own scale, so rounding differences of tiny gradients grow a little
        _close(delta, r.encode(facts, with_recall=False).delta, atol=1e-5)


def test_stacked_padding_keeps_each_loss(tiny_gpt2: Path) -> None:
    r = Reckoner.from_pretrained(tiny_gpt2, device="cpu")
    batches = [packed_fact_batch(r.tokenizer, facts, 64, row_tokens=32) for facts in SETS]
    stacked = stack_sets(batches, r.tokenizer.pad_token_id)
    assert stacked.input_ids.shape[0] == len(SETS) and stacked.attention_mask.dim() == 5
    for i, b in enumerate(batches):
        assert stacked.position_ids is not None
        one = type(b)(stacked.input_ids[i], stacked.attention_mask[i], stacked.labels[i], stacked.position_ids[i])
        with torch.no_grad():
            torch.testing.assert_close(fact_loss(r.model, r.base, {}, one), fact_loss(r.model, r.base, {}, b))
    with pytest.raises(ValueError):
        stack_sets([], 0)
