"""Answering with or without fast weights: scoring a list of choices, greedy generation."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from transformers import PreTrainedTokenizerBase

from reckoning_core.batching import choice_token_ids, pad_rows, prompt_batch, prompt_rows
from reckoning_core.fast_weights import forward
from reckoning_core.losses import upcast


@torch.no_grad()
def score_choices(model: nn.Module, params: Mapping[str, Tensor], tokenizer: PreTrainedTokenizerBase,
                  prompts: list[str], choices: list[str], prefix: str = " ") -> Tensor:
    """P(choice | prompt) renormalised over the choices, from summed token log-probs. (B, C)"""
    if not choices:
        raise ValueError("choices must not be empty")
    device = next(iter(params.values())).device
    cids = choice_token_ids(tokenizer, choices, prefix)
    if all(len(c) == 1 for c in cids):
        # one forward over the prompts; the choices are single tokens read off the last position
        batch = prompt_batch(tokenizer, prompts, device)
        logits = forward(model, params, batch.input_ids, batch.attention_mask)  # (B, T, V)
        rows = torch.arange(len(prompts), device=device)
        last = upcast(logits[rows, batch.last]).log_softmax(-1)  # (B, V)
        scores = last[:, torch.tensor([c[0] for c in cids], device=device)]  # (B, C)
        return scores.softmax(-1)
    base_rows = prompt_rows(tokenizer, prompts)
    joined = [p + c for p in base_rows for c in cids]  # B*C rows
    ids, mask = pad_rows(joined, tokenizer.pad_token_id, device)
    logp = upcast(forward(model, params, ids, mask)).log_softmax(-1)  # (B*C, T, V)
    totals = []
    for i, (p, c) in enumerate((p, c) for p in base_rows for c in cids):
        positions = torch.arange(len(p) - 1, len(p) - 1 + len(c), device=device)
        totals.append(logp[i, positions, torch.tensor(c, device=device)].sum())
    return torch.stack(totals).view(len(prompts), len(choices)).softmax(-1)


@torch.no_grad()
def generate_ids(model: nn.Module, params: Mapping[str, Tensor], tokenizer: PreTrainedTokenizerBase,
                 prompts: list[str], max_new_tokens: int, stop: str = "\n") -> list[list[int]]:
    """Greedy decoding of all prompts at once; each row stops at <eos>, `stop` or the bound."""
    device = next(iter(params.values())).device
    rows = prompt_rows(tokenizer, prompts)
    lengths = torch.tensor([len(r) for r in rows], device=device)
    ids, _ = pad_rows([r + [tokenizer.pad_token_id] * max_new_tokens for r in rows], tokenizer.pad_token_id, device)
    done = torch.zeros(len(rows), dtype=torch.bool, device=device)
    out: list[list[int]] = [[] for _ in rows]
    n_pos = getattr(getattr(model, "config", None), "max_position_embeddings", None) or 10**9
    for _ in range(max_new_tokens):
        width = int(lengths.max())
        if width >= n_pos:
            break
        mask = (torch.arange(width, device=device)[None, :] < lengths[:, None]).long()
        logits = forward(model, params, ids[:, :width], mask)  # (B, T, V)
        nxt = logits[torch.arange(len(rows), device=device), lengths - 1].argmax(-1)  # (B,)
        for i in range(len(rows)):
            if done[i]:
                continue
            tok = int(nxt[i])
            if tok == tokenizer.eos_token_id:
                done[i] = True
                continue
            out[i].append(tok)
            if stop and stop in tokenizer.decode([tok]):
                done[i] = True
            ids[i, lengths[i]] = tok
        lengths = torch.where(done, lengths, lengths + 1)
        if bool(done.all()):
            break
    return out


def generate(model: nn.Module, params: Mapping[str, Tensor], tokenizer: PreTrainedTokenizerBase,
             prompts: list[str], max_new_tokens: int, stop: str = "\n") -> list[str]:
    ids = generate_ids(model, params, tokenizer, prompts, max_new_tokens, stop)
    texts = [str(tokenizer.decode(o)) for o in ids]
    return [t.split(stop)[0].strip() if stop else t.strip() for t in texts]
