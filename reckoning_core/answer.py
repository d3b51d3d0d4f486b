"""Answering with or without fast weights: scoring a list of choices, greedy generation.

Work is bounded per forward: rows go through the model in micro-batches of at most `batch_tokens` padded
tokens, and only the positions an answer is read from go through the LM head, so no (rows, T, V) tensor
is ever made.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from transformers import PreTrainedTokenizerBase

from reckoning_core.batching import choice_token_ids, pad_rows, prompt_rows
from reckoning_core.losses import upcast

# Padded tokens per forward when answering: bounds the activations of one micro-batch whatever the request.
ANSWER_BATCH_TOKENS = 8192


def micro_batches(lengths: list[int], batch_tokens: int = ANSWER_BATCH_TOKENS) -> list[list[int]]:
    """Row indices grouped so that rows x longest row <= batch_tokens (a longer row sits alone); rows of
    similar length go together, which keeps padding small."""
    groups: list[list[int]] = []
    current: list[int] = []
    width = 0
    for i in sorted(range(len(lengths)), key=lambda j: lengths[j]):
        wider = max(width, lengths[i])
        if current and wider * (len(current) + 1) > batch_tokens:
            groups.append(current)
            current, wider = [], lengths[i]
        current.append(i)
        width = wider
    if current:
        groups.append(current)
    return groups


def final_hidden(model: nn.Module, params: Mapping[str, Tensor], input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """The last layer's (normalised) hidden states of the model run with `params`, without the LM head. (B, T, H)"""
    base = getattr(model, "base_model", model)
    prefix = f"{getattr(model, 'base_model_prefix', '')}."
    if base is model or prefix == ".":
        raise TypeError(f"{type(model).__name__} has no base model to read hidden states from")
    inner = {name[len(prefix):]: t for name, t in params.items() if name.startswith(prefix)}
    out = functional_call(base, inner, (input_ids,), {"attention_mask": attention_mask}, tie_weights=True, strict=False)
    hidden: Tensor = out.last_hidden_state
    return hidden


def head_logits(model: nn.Module, params: Mapping[str, Tensor], hidden: Tensor) -> Tensor:
    """The LM head on the given hidden states only. (N, H) -> (N, V)"""
    head = model.get_output_embeddings()  # type: ignore[operator]
    if not isinstance(head, nn.Linear):
        raise TypeError(f"unsupported output embeddings {type(head).__name__}")
    # named_parameters lists a tied head under the input embedding's name, which is the key `params` uses.
    names = {id(p): n for n, p in model.named_parameters()}
    weight = params.get(names.get(id(head.weight), ""), head.weight)
    bias = None if head.bias is None else params.get(names.get(id(head.bias), ""), head.bias)
    return F.linear(hidden, weight, bias)


def _answer_logprobs(model: nn.Module, params: Mapping[str, Tensor], rows: list[list[int]], pad_id: int,
                     positions: list[list[int]], device: torch.device, batch_tokens: int) -> list[Tensor]:
    """log P(. | row[:p+1]) at each row's `positions`, one (len(positions[i]), V) tensor per row."""
    out: list[Tensor] = [torch.empty(0, device=device)] * len(rows)  # placeholders, all replaced below
    for group in micro_batches([len(r) for r in rows], batch_tokens):
        ids, mask = pad_rows([rows[i] for i in group], pad_id, device)
        hidden = final_hidden(model, params, ids, mask)  # (b, T, H)
        row_index = torch.tensor([j for j, i in enumerate(group) for _ in positions[i]], device=device)
        pos_index = torch.tensor([p for i in group for p in positions[i]], device=device)
        logp = upcast(head_logits(model, params, hidden[row_index, pos_index])).log_softmax(-1)  # (n, V)
        at = 0
        for i in group:
            out[i] = logp[at : at + len(positions[i])]
            at += len(positions[i])
    return out


@torch.no_grad()
def score_choices(model: nn.Module, params: Mapping[str, Tensor], tokenizer: PreTrainedTokenizerBase,
                  prompts: list[str], choices: list[str], prefix: str = " ",
                  batch_tokens: int = ANSWER_BATCH_TOKENS) -> Tensor:
    """P(choice | prompt) renormalised over the choices, from summed token log-probs. (B, C)"""
    if not choices:
        raise ValueError("choices must not be empty")
    device = next(iter(params.values())).device
    cids = choice_token_ids(tokenizer, choices, prefix)
    base_rows = prompt_rows(tokenizer, prompts)
    if all(len(c) == 1 for c in cids):
        # one row per prompt; the choices are single tokens read off its last position
        logp = _answer_logprobs(model, params, base_rows, tokenizer.pad_token_id,
                                [[len(r) - 1] for r in base_rows], device, batch_tokens)
        first = torch.tensor([c[0] for c in cids], device=device)
        return torch.stack([lp[0, first] for lp in logp]).softmax(-1)  # (B, C)
    joined = [p + c for p in base_rows for c in cids]  # B*C rows
    positions = [list(range(len(p) - 1, len(p) - 1 + len(c))) for p in base_rows for c in cids]
    logp = _answer_logprobs(model, params, joined, tokenizer.pad_token_id, positions, device, batch_tokens)
    targets = [c for _ in base_rows for c in cids]
    totals = [lp[torch.arange(len(t), device=device), torch.tensor(t, device=device)].sum()
              for lp, t in zip(logp, targets, strict=True)]
    return torch.stack(totals).view(len(prompts), len(choices)).softmax(-1)


@torch.no_grad()
def generate_ids(model: nn.Module, params: Mapping[str, Tensor], tokenizer: PreTrainedTokenizerBase,
                 prompts: list[str], max_new_tokens: int, stop: str = "\n",
                 batch_tokens: int = ANSWER_BATCH_TOKENS) -> list[list[int]]:
    """Greedy decoding, each micro-batch of prompts at once; each row stops at <eos>, `stop` or the bound."""
    rows = prompt_rows(tokenizer, prompts)
    out: list[list[int]] = [[] for _ in rows]
    for group in micro_batches([len(r) + max_new_tokens for r in rows], batch_tokens):
        for i, ids in zip(group, _generate_group(model, params, tokenizer, [rows[i] for i in group],
                                                  max_new_tokens, stop), strict=True):
            out[i] = ids
    return out


def _generate_group(model: nn.Module, params: Mapping[str, Tensor], tokenizer: PreTrainedTokenizerBase,
                    rows: list[list[int]], max_new_tokens: int, stop: str) -> list[list[int]]:
    device = next(iter(params.values())).device
    lengths = torch.tensor([len(r) for r in rows], device=device)
    ids, _ = pad_rows([r + [tokenizer.pad_token_id] * max_new_tokens for r in rows], tokenizer.pad_token_id, device)
    done = torch.zeros(len(rows), dtype=torch.bool, device=device)
    out: list[list[int]] = [[] for _ in rows]
    n_pos = getattr(getattr(model, "config", None), "max_position_embeddings", None) or 10**9
    every = torch.arange(len(rows), device=device)
    for _ in range(max_new_tokens):
        width = int(lengths.max())
        if width >= n_pos:
            break
        mask = (torch.arange(width, device=device)[None, :] < lengths[:, None]).long()
        hidden = final_hidden(model, params, ids[:, :width], mask)  # (B, T, H)
        nxt = head_logits(model, params, hidden[every, lengths - 1]).argmax(-1)  # (B,)
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
