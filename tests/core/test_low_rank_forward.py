"""A delta stored at a rank answers through its factors (W x + U (V x)) exactly as the merged delta does."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reckoning_core.answer import final_hidden
from reckoning_core.batching import pad_rows, prompt_rows
from reckoning_core.compression import low_rank
from reckoning_core.fast_weights import LORA_V, merge
from reckoning_core.low_rank_forward import split
from reckoning_core.reckoner import MergedWeights, Reckoner

QUESTIONS = ["Bob is blue.", "Anne is round.", "K is the uncle of C."]


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def reckoner(request: pytest.FixtureRequest) -> Reckoner:
    path: Path = request.getfixturevalue(f"tiny_{request.param}")
    return Reckoner.from_pretrained(path)


def _compact(r: Reckoner) -> dict[str, torch.Tensor]:
    """A rank-4 delta as the service stores it, large enough to move a random tiny model's answers."""
    gen = torch.Generator().manual_seed(0)
    delta = {n: torch.randn(shape, generator=gen) for n, shape in r.adapted.items()}
    return r.round_trip(low_rank(delta, 4), "float16")


def test_factors_answer_as_the_merged_delta(reckoner: Reckoner) -> None:
    compact = _compact(reckoner)
    weights = reckoner.merged(compact)
    assert weights.factors, "the rank-4 matrices of the MLP should stay factors"
    matrices = [n for n, shape in reckoner.adapted.items() if len(shape) == 2]
    assert matrices and all(weights.params[n] is reckoner.base[n] for n in matrices)  # no matrix was merged
    full = merge(reckoner.base, compact)
    prompts = [reckoner.config.prompt.question_prompt(q) for q in QUESTIONS]
    ids, mask = pad_rows(prompt_rows(reckoner.tokenizer, prompts), reckoner.tokenizer.pad_token_id)
    with reckoner.factor_hooks.active(weights.factors):
        got = final_hidden(reckoner.model, weights.params, ids, mask)
    want, plain = final_hidden(reckoner.model, full, ids, mask), final_hidden(reckoner.model, reckoner.base, ids, mask)
    assert (want - plain).abs().max() > 0.1  # the delta matters, so the equality below is not the base twice
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    answers = reckoner.answer(QUESTIONS, weights)  # the service's path: the same probabilities as merged weights
    for a, b in zip(answers, reckoner.answer(QUESTIONS, MergedWeights(full, 0)), strict=True):
        assert a.scores is not None and b.scores is not None
        assert a.scores == pytest.approx(b.scores, abs=1e-5)


def test_generation_through_factors_matches_the_merged_delta(reckoner: Reckoner) -> None:
    from reckoning_core.answer import generate

    compact = _compact(reckoner)
    weights, full = reckoner.merged(compact), merge(reckoner.base, compact)
    prompts = [reckoner.config.prompt.question_prompt(q) for q in QUESTIONS]
    with reckoner.factor_hooks.active(weights.factors):
        got = generate(reckoner.model, weights.params, reckoner.tokenizer, prompts, 6)
    assert got == generate(reckoner.model, full, reckoner.tokenizer, prompts, 6)


def test_factors_are_smaller_than_the_merged_matrices(reckoner: Reckoner) -> None:
    compact = _compact(reckoner)
    dense = reckoner.merged(merge({k: torch.zeros_like(v) for k, v in reckoner.base.items()}, compact))
    assert 0 < reckoner.merged(compact).nbytes < dense.nbytes


def test_factors_stop_applying_when_the_block_ends_even_on_error(reckoner: Reckoner) -> None:
    weights = reckoner.merged(_compact(reckoner))
    prompts = [reckoner.config.prompt.question_prompt(q) for q in QUESTIONS]
    ids, mask = pad_rows(prompt_rows(reckoner.tokenizer, prompts), reckoner.tokenizer.pad_token_id)
    plain = final_hidden(reckoner.model, reckoner.base, ids, mask)
    with pytest.raises(RuntimeError, match="boom"), reckoner.factor_hooks.active(weights.factors):
        assert (final_hidden(reckoner.model, reckoner.base, ids, mask) - plain).abs().max() > 0.1
        raise RuntimeError("boom")
    torch.testing.assert_close(final_hidden(reckoner.model, reckoner.base, ids, mask), plain, atol=0, rtol=0)
    reckoner.factor_hooks.remove()
    assert not any(m._forward_hooks for m in reckoner.model.modules())


def test_an_unpaired_factor_is_refused(reckoner: Reckoner) -> None:
    compact = _compact(reckoner)
    orphan = {k: v for k, v in compact.items() if not k.endswith(LORA_V)}
    with pytest.raises(ValueError, match="no matching"):
        split(reckoner.model, reckoner.base, orphan)
