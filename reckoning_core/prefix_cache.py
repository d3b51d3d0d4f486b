"""In-context answering with a prefix cache: the facts' keys and values computed once, reused per question."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from transformers import PreTrainedTokenizerBase
from transformers.cache_utils import DynamicCache

from reckoning_core.batching import choice_token_ids
from reckoning_core.config import PromptFormat
from reckoning_core.losses import upcast

_SENTINEL = "\x00QUESTION\x00"


@dataclass(frozen=True)
class PrefixCache:
    """The facts' part of an in-context prompt, run once: per layer (keys, values), each (1, H, P, D)."""

    tokens: tuple[int, ...]  # <bos> + the prefix's tokens (P of them)
    kv: tuple[tuple[Tensor, Tensor], ...]

    @property
    def length(self) -> int:
        return len(self.tokens)

    def nbytes(self, dtype: torch.dtype | None = torch.float16) -> int:
        """Bytes of the keys and values, stored at `dtype` (None: as held)."""
        size = torch.empty((), dtype=dtype).element_size() if dtype is not None else None
        return sum(t.numel() * (size or t.element_size()) for pair in self.kv for t in pair)


def context_prefix(prompt: PromptFormat, facts: list[str]) -> str:
    """The in-context prompt up to the question, without trailing whitespace (it belongs to the question's
    first token in byte-level BPE). Facts keep the caller's order with duplicates dropped, as in-context does."""
    kept = [f for f in dict.fromkeys(" ".join(f.split()) for f in facts) if f]
    full = prompt.in_context.format(facts=prompt.context_text(kept), question=_SENTINEL)
    return full.split(_SENTINEL, 1)[0].rstrip()


def _ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]


@torch.no_grad()
def prefill(model: nn.Module, tokenizer: PreTrainedTokenizerBase, prefix: str) -> PrefixCache:
    """Run the prefix once (with the model's own weights) and keep every layer's keys and values."""
    tokens = _ids(tokenizer, prefix)
    device = next(model.parameters()).device
    out = model(torch.tensor([tokens], device=device), use_cache=True)
    cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
    kv = tuple((layer.keys, layer.values) for layer in cache.layers)
    return PrefixCache(tuple(tokens), kv)


def suffix_tokens(tokenizer: PreTrainedTokenizerBase, cache: PrefixCache, prompts: list[str]) -> list[list[int]]:
    """Each full prompt's tokens after the cached ones; refuses a prompt whose tokens do not start with the
    cache's (a tokenizer merging across the boundary), so a cached answer is always the uncached one."""
    out = []
    for p in prompts:
        ids = _ids(tokenizer, p)
        if tuple(ids[: cache.length]) != cache.tokens or len(ids) == cache.length:
            raise ValueError("the prompt does not start with the cached prefix's tokens")
        out.append(ids[cache.length :])
    return out


@torch.no_grad()
def suffix_forward(model: nn.Module, cache: PrefixCache, suffixes: list[list[int]], pad_id: int) -> Tensor:
    """Logits of every suffix token, all suffixes in one forward over the shared cache. (B, W, V)

    The cache is expanded to the batch (a view, no copy) inside a fresh DynamicCache, so the PrefixCache is
    never written to; suffixes are right-padded and their positions continue from the prefix."""
    device = cache.kv[0][0].device
    n, width, p = len(suffixes), max(len(s) for s in suffixes), cache.length
    ids = torch.full((n, width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((n, p + width), dtype=torch.long, device=device)
    mask[:, :p] = 1
    for i, s in enumerate(suffixes):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long, device=device)
        mask[i, p : p + len(s)] = 1
    config = getattr(model, "config", None)
    past = DynamicCache(config=config) if config is not None else DynamicCache()
    for layer, (k, v) in enumerate(cache.kv):
        past.update(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1), layer)
    positions = torch.arange(p, p + width, device=device)[None].expand(n, -1)
    return model(ids, cache=past, attention_mask=mask, position_ids=positions, use_cache=True).logits


def suffix_logits(model: nn.Module, cache: PrefixCache, suffixes: list[list[int]], pad_id: int) -> Tensor:
    """Next-token logits at each suffix's last token. (B, V)"""
    logits = suffix_forward(model, cache, suffixes, pad_id)
    rows = torch.arange(len(suffixes), device=logits.device)
    return logits[rows, torch.tensor([len(s) - 1 for s in suffixes], device=logits.device)]


@torch.no_grad()
def score_from_prefix(model: nn.Module, tokenizer: PreTrainedTokenizerBase, cache: PrefixCache,
                      prompts: list[str], choices: list[str], prefix: str = " ") -> Tensor:
    """P(choice | prompt) renormalised over the choices, as answer.score_choices gives without a cache. (B, C)"""
    if not choices:
        raise ValueError("choices must not be empty")
    cids = choice_token_ids(tokenizer, choices, prefix)
    suffixes = suffix_tokens(tokenizer, cache, prompts)
    pad = tokenizer.pad_token_id
    if all(len(c) == 1 for c in cids):
        last = upcast(suffix_logits(model, cache, suffixes, pad)).log_softmax(-1)  # (B, V)
        return last[:, torch.tensor([c[0] for c in cids], device=last.device)].softmax(-1)
    # multi-token choices: one row per (prompt, choice), summed token log-probs, as score_choices does
    joined = [s + c for s in suffixes for c in cids]
    logp = upcast(suffix_forward(model, cache, joined, pad)).log_softmax(-1)  # (B*C, W, V)
    totals = []
    for i, (s, c) in enumerate((s, c) for s in suffixes for c in cids):
        at = torch.arange(len(s) - 1, len(s) - 1 + len(c), device=logp.device)
        totals.append(logp[i, at, torch.tensor(c, device=logp.device)].sum())
    return torch.stack(totals).view(len(prompts), len(choices)).softmax(-1)
