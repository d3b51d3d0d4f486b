"""Text -> padded tensors: fact rows for the inner loop, prompt rows for answering."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from reckoning_core.inner_loop import FactBatch
from reckoning_core.losses import IGNORE


def _ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def pad_rows(rows: list[list[int]], pad_id: int, device: str | torch.device = "cpu") -> tuple[Tensor, Tensor]:
    """Right-pad token rows. Returns input_ids (B, T) and attention_mask (B, T)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids.to(device), mask.to(device)


def fact_rows(tokenizer: PreTrainedTokenizerBase, facts: list[str], max_tokens: int) -> list[list[int]]:
    """<bos> fact <eos>, truncated to max_tokens."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    rows = []
    for f in facts:
        body = _ids(tokenizer, f)[: max_tokens - 2]
        rows.append([bos, *body, eos])
    return rows


def fact_batch(tokenizer: PreTrainedTokenizerBase, facts: list[str], max_tokens: int = 64,
               device: str | torch.device = "cpu") -> FactBatch:
    if not facts:
        raise ValueError("no facts to encode")
    ids, mask = pad_rows(fact_rows(tokenizer, facts, max_tokens), tokenizer.pad_token_id, device)
    labels = ids.masked_fill(mask == 0, IGNORE)
    return FactBatch(ids, mask, labels)


def prompt_rows(tokenizer: PreTrainedTokenizerBase, prompts: list[str]) -> list[list[int]]:
    return [[tokenizer.bos_token_id, *_ids(tokenizer, p)] for p in prompts]


@dataclass
class PromptBatch:
    input_ids: Tensor  # (B, T)
    attention_mask: Tensor  # (B, T)
    last: Tensor  # (B,) index of each row's last prompt token


def prompt_batch(tokenizer: PreTrainedTokenizerBase, prompts: list[str],
                 device: str | torch.device = "cpu") -> PromptBatch:
    rows = prompt_rows(tokenizer, prompts)
    ids, mask = pad_rows(rows, tokenizer.pad_token_id, device)
    last = torch.tensor([len(r) - 1 for r in rows], device=ids.device)
    return PromptBatch(ids, mask, last)


def choice_token_ids(tokenizer: PreTrainedTokenizerBase, choices: list[str], prefix: str = " ") -> list[list[int]]:
    return [_ids(tokenizer, prefix + c) for c in choices]
