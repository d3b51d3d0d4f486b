"""`reckoning grow`: inserted identity blocks keep the model's function, and the grown folder loads and serves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from reckoning_core.checkpoint import load_checkpoint
from reckoning_core.reckoner import Reckoner
from tests.support import assert_same_answers
from training.grow import grow, grow_cmd

FACTS = ["Bob is blue.", "If someone is blue then they are round.", "Anne is not kind."]
QUESTIONS = ["Bob is round.", "Anne is kind.", "Bob is kind."]


def _shift(delta: dict[str, torch.Tensor], prefix: str, sources: list[int]) -> dict[str, torch.Tensor]:
    """The source's delta under the grown model's block numbers (inserted blocks get none)."""
    new_index = {src: j for j, src in enumerate(sources) if src is not None}
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.(.*)$")
    out = {}
    for k, v in delta.items():
        m = pattern.match(k)
        out[f"{prefix}.{new_index[int(m.group(1))]}.{m.group(2)}" if m else k] = v
    return out


@pytest.mark.parametrize("fixture,prefix", [("tiny_gpt2", "transformer.h"), ("tiny_llama", "model.layers")])
def test_grown_model_has_the_same_logits_and_answers_from_the_same_delta(
        fixture: str, prefix: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    src = request.getfixturevalue(fixture)
    path = grow_cmd(src, tmp_path / "grown", insert_after=[0, 1, 1])
    small, big = Reckoner.from_pretrained(src), Reckoner.from_pretrained(path)
    blocks = big.model.get_submodule(prefix)
    assert len(blocks) == 5 and len(small.model.get_submodule(prefix)) == 2

    ids = small.tokenizer(["Question: Bob is round.\nAnswer:"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(big.model(ids).logits, small.model(ids).logits, rtol=1e-5, atol=1e-5)

    delta = small.encode(FACTS, with_recall=False).delta
    # grown blocks: 0, new(0), 1, new(1), new(1)
    grown_delta = _shift(delta, prefix, [0, None, 1, None, None])  # type: ignore[list-item]
    assert_same_answers(big.answer(QUESTIONS, grown_delta), small.answer(QUESTIONS, delta))

    # an encode on the grown model adapts the new blocks too, with the LRs of the block they copy
    assert any(k.startswith(f"{prefix}.1.") for k in big.encode(FACTS, with_recall=False).delta)
    lrs = load_checkpoint(path).log_lrs
    for k, v in lrs.items():
        m = re.match(rf"^{re.escape(prefix)}\.(\d+)\.(.*)$", k)
        assert m, k
        src_block = [0, 0, 1, 1, 1][int(m.group(1))]
        torch.testing.assert_close(v, small.ckpt.log_lrs[f"{prefix}.{src_block}.{m.group(2)}"])


def test_grow_rejects_blocks_that_do_not_exist(tiny_gpt2: Path) -> None:
    with pytest.raises(ValueError, match=r"0\.\.1"):
        grow(load_checkpoint(tiny_gpt2), [2])
    with pytest.raises(ValueError, match="insert-after"):
        grow(load_checkpoint(tiny_gpt2), [])
