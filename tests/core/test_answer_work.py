"""Bounded answering work: micro-batches give the same answers, and only answer positions reach the LM head."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor

from reckoning_core import answer
from reckoning_core.answer import generate_ids, micro_batches, score_choices
from reckoning_core.fast_weights import forward
from reckoning_core.reckoner import Reckoner

PROMPTS = [f"Question: {q}\nAnswer:" for q in ("Bob is blue.", "x", "If someone is nice and blue then they are round?",
                                              "Anne is kind.", "K is the uncle of C.")]  # fmt: skip
CHOICES = ["True", "Bob is blue", "no way at all", "False"]


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def reckoner(request: pytest.FixtureRequest) -> Reckoner:
    path: Path = request.getfixturevalue(f"tiny_{request.param}")
    return Reckoner.from_pretrained(path)


def test_micro_batches_bound_padded_tokens_and_cover_every_row() -> None:
    lengths = [5, 1, 9, 3, 3, 40, 2]
    groups = micro_batches(lengths, 10)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for group in groups:
        assert len(group) == 1 or len(group) * max(lengths[i] for i in group) <= 10  # a longer row sits alone


def _reference_scores(r: Reckoner, params: dict[str, Tensor], prompts: list[str], choices: list[str]) -> Tensor:
    """The pre-micro-batch computation: one forward over every row, log_softmax over the full (rows, T, V)."""
    from reckoning_core.batching import choice_token_ids, pad_rows, prompt_rows

    cids = choice_token_ids(r.tokenizer, choices, " ")
    base = prompt_rows(r.tokenizer, prompts)
    rows = [p + c for p in base for c in cids]
    ids, mask = pad_rows(rows, r.tokenizer.pad_token_id)
    logp = forward(r.model, params, ids, mask).float().log_softmax(-1)
    totals = [logp[i, torch.arange(len(p) - 1, len(p) - 1 + len(c)), torch.tensor(c)].sum()
              for i, (p, c) in enumerate((p, c) for p in base for c in cids)]  # fmt: skip
    return torch.stack(totals).view(len(prompts), len(choices)).softmax(-1)


@torch.no_grad()
def test_scores_equal_the_full_forward_at_any_micro_batch_size(reckoner: Reckoner) -> None:
    params = reckoner.merged(reckoner.encode(["Bob is blue.", "Anne is kind."], with_recall=False).delta).params
    expected = _reference_scores(reckoner, params, PROMPTS, CHOICES)
    for batch_tokens in (1, 16, 64, 8192):
        got = score_choices(reckoner.model, params, reckoner.tokenizer, PROMPTS, CHOICES, batch_tokens=batch_tokens)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    single = score_choices(reckoner.model, params, reckoner.tokenizer, PROMPTS, ["True", "False"], batch_tokens=8)
    torch.testing.assert_close(single, _reference_scores(reckoner, params, PROMPTS, ["True", "False"]),
                               rtol=1e-5, atol=1e-6)  # fmt: skip


def test_generation_is_the_same_in_micro_batches(reckoner: Reckoner) -> None:
    whole = generate_ids(reckoner.model, reckoner.base, reckoner.tokenizer, PROMPTS, 4, batch_tokens=8192)
    assert generate_ids(reckoner.model, reckoner.base, reckoner.tokenizer, PROMPTS, 4, batch_tokens=1) == whole


def test_only_answer_positions_reach_the_lm_head(reckoner: Reckoner, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, ...]] = []
    head = answer.head_logits

    def spy(model: torch.nn.Module, params: dict[str, Tensor], hidden: Tensor) -> Tensor:
        seen.append(tuple(hidden.shape))
        return head(model, params, hidden)

    monkeypatch.setattr(answer, "head_logits", spy)
    cids = [len(c) for c in reckoner.tokenizer([" " + c for c in CHOICES], add_special_tokens=False)["input_ids"]]
    score_choices(reckoner.model, reckoner.base, reckoner.tokenizer, PROMPTS, CHOICES)
    # One (N, H) matrix per micro-batch, N = the choice tokens scored: never (rows, T, H), let alone (rows, T, V).
    assert sum(n for n, _ in seen) == len(PROMPTS) * sum(cids)
    assert all(len(shape) == 2 for shape in seen)
