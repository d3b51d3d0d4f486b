"""Text -> padded tensors: fact rows for the inner loop, prompt rows for answering."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from reckoning_core.inner_loop import FactBatch
from reckoning_core.losses import IGNORE


def token_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """The text's token ids, with no special tokens added."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def packed_attention_mask(segment: Tensor, pos: Tensor, dtype: torch.dtype = torch.float32,
                          shared_segment: int | None = None) -> Tensor:
    """Additive (B, 1, T, T) mask for rows that pack several sequences, from segment ids and positions (B, T).

    A token attends to the tokens of its own segment at positions up to its own (and to those of
    `shared_segment`, a prefix every segment reads, positioned before them); padding (segment -1) attends to
    itself only, so no row is all masked. 0 where allowed, the dtype's min elsewhere: a bool 4-D mask was
    silently wrong with eager attention.
    """
    same = segment[:, :, None] == segment[:, None, :]
    if shared_segment is not None:
        same = same | (segment[:, None, :] == shared_segment)
    causal = pos[:, :, None] >= pos[:, None, :]
    real = segment[:, :, None] >= 0
    pad_self = torch.eye(segment.shape[1], dtype=torch.bool, device=segment.device)[None] & ~real
    allow = (same & causal & real) | pad_self
    mask = torch.zeros(allow.shape, dtype=dtype, device=segment.device)  # on the segment ids' device
    return mask.masked_fill(~allow, torch.finfo(dtype).min)[:, None]


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
        body = token_ids(tokenizer, f)[: max_tokens - 2]
        rows.append([bos, *body, eos])
    return rows


def fact_batch(tokenizer: PreTrainedTokenizerBase, facts: list[str], max_tokens: int = 64,
               device: str | torch.device = "cpu") -> FactBatch:
    if not facts:
        raise ValueError("no facts to encode")
    ids, mask = pad_rows(fact_rows(tokenizer, facts, max_tokens), tokenizer.pad_token_id, device)
    labels = ids.masked_fill(mask == 0, IGNORE)
    return FactBatch(ids, mask, labels)


def _pack(lengths: list[int], row_tokens: int) -> list[list[int]]:
    """Greedy first-fit of items (indices) into rows of at most row_tokens (an item longer sits alone)."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda j: -lengths[j]):
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(row_tokens - lengths[i])
    return rows


def packed_fact_batch(tokenizer: PreTrainedTokenizerBase, facts: list[str], max_tokens: int = 64,
                      device: str | torch.device = "cpu", row_tokens: int = 512,
                      dtype: torch.dtype = torch.float32, width_multiple: int = 1) -> FactBatch:
    """Facts packed several per row: no padding to pay for in the inner loop.

    Each fact attends only to its own earlier tokens (block-diagonal causal mask) and its
    positions restart at 0, so every logit equals the one fact_batch gives; each fact's first
    token is never a label, as in fact_batch after the shift. Rows hold at most row_tokens
    tokens, which bounds the (T, T) attention mask for large fact sets. `width_multiple` pads the rows' width up
    to a multiple of it (padding attends only to itself and carries no label: the same loss), so fact sets of
    many sizes share a few shapes; oneDNN keeps compiled kernels per shape (see DEFAULT_INNER_AUTOCAST).
    """
    if not facts:
        raise ValueError("no facts to encode")
    rows = fact_rows(tokenizer, facts, max_tokens)
    groups = _pack([len(r) for r in rows], max(row_tokens, *(len(r) for r in rows)))
    width = max(sum(len(rows[i]) for i in g) for g in groups)
    width = -(-width // width_multiple) * width_multiple
    ids = torch.full((len(groups), width), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(groups), width), IGNORE, dtype=torch.long)
    pos = torch.zeros((len(groups), width), dtype=torch.long)
    segment = torch.full((len(groups), width), -1, dtype=torch.long)  # -1 = padding
    for b, g in enumerate(groups):
        at = 0
        for i in sorted(g):
            r = torch.tensor(rows[i], dtype=torch.long)
            n = len(r)
            ids[b, at : at + n] = r
            labels[b, at + 1 : at + n] = r[1:]
            pos[b, at : at + n] = torch.arange(n)
            segment[b, at : at + n] = i
            at += n
    # the (B, 1, T, T) float mask is made on the device it is used on (up to 1 MB a row): no host-side copy
    pos = pos.to(device)
    mask = packed_attention_mask(segment.to(device), pos, dtype)
    return FactBatch(ids.to(device), mask, labels.to(device), pos)


def prompt_rows(tokenizer: PreTrainedTokenizerBase, prompts: list[str]) -> list[list[int]]:
    return [[tokenizer.bos_token_id, *token_ids(tokenizer, p)] for p in prompts]


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
    return [token_ids(tokenizer, prefix + c) for c in choices]
