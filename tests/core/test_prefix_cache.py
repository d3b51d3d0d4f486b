"""Prefix-cached in-context answers equal plain in-context ones (GPT-2 and Llama shapes)."""

from pathlib import Path

import pytest
import torch

from reckoning_core.answer import score_choices
from reckoning_core.prefix_cache import context_prefix, score_from_prefix, suffix_tokens
from reckoning_core.reckoner import Reckoner
from tests.support import assert_same_answers

FACTS = ["Bob is blue.", "Anne is kind.", "If someone is nice and blue then they are round.", "Bob is blue."]
QUESTIONS = ["Bob is round.", "Anne is not kind.", "Is K the uncle of C?", "Bob is blue."]


@pytest.mark.parametrize("arch", ["tiny_gpt2", "tiny_llama"])
def test_cached_answers_equal_in_context(arch: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(arch)
    r = Reckoner.from_pretrained(path, device="cpu")
    cache = r.prefill_context(FACTS)
    cached = r.answer_from_context(cache, FACTS, QUESTIONS)
    plain = r.answer_in_context(FACTS, QUESTIONS)
    assert_same_answers(cached, plain)
    # one question at a time from the same cache gives the same (the cache is never written to)
    single = r.answer_from_context(cache, FACTS, QUESTIONS[:1])
    assert single[0].scores == pytest.approx(cached[0].scores, abs=1e-5)


def test_cached_logits_equal_uncached_logits(tiny_gpt2: Path) -> None:
    from reckoning_core.prefix_cache import suffix_logits

    r = Reckoner.from_pretrained(tiny_gpt2, device="cpu")
    cache = r.prefill_context(FACTS)
    prompts = [r.config.prompt.in_context_prompt(list(dict.fromkeys(FACTS)), q) for q in QUESTIONS]
    logits = suffix_logits(r.model, cache, suffix_tokens(r.tokenizer, cache, prompts), r.tokenizer.pad_token_id)
    for i, p in enumerate(prompts):
        ids = torch.tensor([[r.tokenizer.bos_token_id, *r.tokenizer(p, add_special_tokens=False)["input_ids"]]])
        with torch.no_grad():
            ref = r.model(ids).logits[0, -1]
        torch.testing.assert_close(logits[i], ref, atol=1e-5, rtol=1e-5)
    labels = list(r.labels or [])
    probs = score_from_prefix(r.model, r.tokenizer, cache, prompts, labels)
    torch.testing.assert_close(probs, score_choices(r.model, r.base, r.tokenizer, prompts, labels), atol=1e-6,
                               rtol=1e-5)


def test_prefix_bytes_and_refusals(tiny_gpt2: Path) -> None:
    r = Reckoner.from_pretrained(tiny_gpt2, device="cpu")
    cache = r.prefill_context(FACTS)
    cfg = r.model.config
    per_token = 2 * cfg.n_layer * cfg.n_embd  # keys and values, every layer
    assert cache.length == 1 + len(r.tokenizer(context_prefix(r.config.prompt, FACTS),
                                               add_special_tokens=False)["input_ids"])
    assert cache.nbytes(torch.float16) == 2 * per_token * cache.length
    assert cache.nbytes(None) == 4 * per_token * cache.length
    with pytest.raises(ValueError):
        suffix_tokens(r.tokenizer, cache, ["Facts: something else entirely"])
    with pytest.raises(ValueError):
        score_from_prefix(r.model, r.tokenizer, cache, ["Facts: x"], [])


def test_multi_token_choices(tiny_gpt2: Path) -> None:
    r = Reckoner.from_pretrained(tiny_gpt2, device="cpu")
    choices = ["True", "not a single token choice", "Unknown"]
    cached = r.answer_from_context(r.prefill_context(FACTS), FACTS, QUESTIONS, choices=choices)
    plain = r.answer_in_context(FACTS, QUESTIONS, choices=choices)
    for c, p in zip(cached, plain, strict=True):
        assert c.answer == p.answer and c.scores == pytest.approx(p.scores, abs=1e-5)
