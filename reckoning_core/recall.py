"""Fact recall: the share of facts an adapted model reproduces exactly under teacher forcing."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from transformers import PreTrainedTokenizerBase

from reckoning_core.batching import fact_rows, pad_rows
from reckoning_core.fast_weights import forward
from reckoning_core.losses import IGNORE, lm_loss


@dataclass(frozen=True)
class Recall:
    share: float  # facts reproduced / facts
    per_fact: list[bool]
    loss: float  # the fact LM loss (what the inner loop minimised), from the same forward


@torch.no_grad()
def fact_recall(model: nn.Module, params: Mapping[str, Tensor], tokenizer: PreTrainedTokenizerBase,
                facts: list[str], max_tokens: int = 64) -> Recall:
    """A fact counts as reproduced when, at every position, its next token ranks within the
    number of distinct continuations the fact set allows there (1 where the prefix is unique,
    so plain argmax; k where k facts share the prefix, e.g. "Bob is" with three Bob facts).
    """
    if not facts:
        return Recall(0.0, [], float("nan"))
    device = next(iter(params.values())).device
    rows = fact_rows(tokenizer, facts, max_tokens)
    allowed: dict[tuple[int, ...], set[int]] = defaultdict(set)
    for r in rows:
        for t in range(1, len(r)):
            allowed[tuple(r[:t])].add(r[t])
    ids, mask = pad_rows(rows, tokenizer.pad_token_id, device)
    logits = forward(model, params, ids, mask)  # (F, T, V)
    loss = float(lm_loss(logits, ids.masked_fill(mask == 0, IGNORE)))
    ok = []
    for i, r in enumerate(rows):
        good = True
        for t in range(1, len(r)):
            k = len(allowed[tuple(r[:t])])
            target = logits[i, t - 1, r[t]]
            if int((logits[i, t - 1] > target).sum()) >= k:
                good = False
                break
        ok.append(good)
    return Recall(sum(ok) / len(ok), ok, loss)
