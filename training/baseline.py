"""Fine-tuned in-context reasoning (FT-ICR): the theory in the prompt, many questions packed per row."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from transformers import PreTrainedTokenizerBase

from reckoning_core.batching import packed_attention_mask, token_ids
from reckoning_core.config import PromptFormat
from reckoning_core.fast_weights import forward
from reckoning_core.losses import IGNORE, answer_loss, lm_loss
from training.data.episode import Question


def split_in_context(prompt: PromptFormat) -> tuple[str, str]:
    """The in-context template cut where the question starts: (facts part, question part)."""
    head, _, tail = prompt.in_context.partition("{question}")
    facts_part, sep, question_head = head.rpartition("\n")
    return facts_part, sep + question_head + "{question}" + tail


def packed_row(tok: PreTrainedTokenizerBase, prompt: PromptFormat, facts: list[str], questions: list[Question],
               label_ids: dict[str, int]) -> tuple[list[int], list[tuple[int, int]], list[int], list[int]]:
    """One row: <bos> facts, then question blocks that each see the facts and themselves only.

    Returns tokens, (start, end) of every block, the index predicting each block's label, and
    the target label index. Tokens equal those of the serving prompt (tested).
    """
    facts_tpl, q_tpl = split_in_context(prompt)
    prefix = [tok.bos_token_id, *token_ids(tok, facts_tpl.format(facts=prompt.context_text(facts)))]
    tokens = list(prefix)
    spans, where, targets = [], [], []
    labels = list(label_ids)
    for q in questions:
        block = token_ids(tok, q_tpl.format(question=q.text))
        start = len(tokens)
        tokens += [*block, label_ids[q.answer]]
        spans.append((start, len(tokens)))
        where.append(start + len(block) - 1)
        targets.append(labels.index(q.answer))
    return tokens, spans, where, targets


def block_mask(prefix_len: int, spans: list[tuple[int, int]], total: int) -> tuple[Tensor, Tensor]:
    """Float 4-D mask (1, 1, T, T) and position ids (1, T) for a packed row: the prefix is causal, and each
    block sees the prefix and itself only, its positions continuing the prefix's."""
    segment = torch.full((1, total), -1, dtype=torch.long)
    pos = torch.arange(total)
    segment[0, :prefix_len] = 0
    for k, (s, e) in enumerate(spans, start=1):
        segment[0, s:e] = k
        pos[s:e] = torch.arange(prefix_len, prefix_len + e - s)
    return packed_attention_mask(segment, pos[None], torch.float32, shared_segment=0), pos[None]


def icr_loss(model: nn.Module, params: Mapping[str, Tensor], tok: PreTrainedTokenizerBase, prompt: PromptFormat,
             facts: list[str], questions: list[Question], label_ids: dict[str, int], blocks_per_row: int,
             lm_weight: float, lm_questions: bool = False, copy_weight: float = 0.0) -> tuple[Tensor, int, int]:
    """Answer loss over all questions (+ LM loss on the facts text); returns loss, n correct, n.

    `copy_weight` adds one more block per row that repeats the facts verbatim, with LM loss on it: every
    token there is predictable by finding its previous occurrence in the context and copying what came
    next, the induction-head task, which is the lookup an answer needs and which a model trained from
    scratch otherwise has to discover from the answer loss alone.
    """
    device = next(iter(params.values())).device
    label_tensor = torch.tensor(list(label_ids.values()), device=device)
    total_loss = torch.zeros((), device=device)
    correct = 0
    for i in range(0, len(questions), blocks_per_row):
        chunk = questions[i : i + blocks_per_row]
        tokens, spans, where, targets = packed_row(tok, prompt, facts, chunk, label_ids)
        prefix_len = spans[0][0]
        if copy_weight:
            repeat = (len(tokens), len(tokens) + prefix_len - 1)
            tokens = tokens + tokens[1:prefix_len]  # the facts text again, without <bos>
        mask, pos = block_mask(prefix_len, [*spans, repeat] if copy_weight else spans, len(tokens))
        ids = torch.tensor([tokens], device=device)
        logits = forward(model, params, ids, mask.to(device), position_ids=pos.to(device))  # (1, T, V)
        choice = logits[0, torch.tensor(where, device=device)][:, label_tensor]  # (Q, 3)
        tgt = torch.tensor(targets, device=device)
        loss = answer_loss(choice, tgt) * len(chunk)
        if lm_weight:
            # LM loss on the facts and on each question's own tokens: copying a question's words
            # from the facts in context is what builds the lookup (induction) heads early.
            labels = torch.full((1, len(tokens)), IGNORE, device=device)
            labels[0, 1:prefix_len] = ids[0, 1:prefix_len]
            if lm_questions:
                for s, e in spans:  # not the first token (predicted from another block), not the label
                    labels[0, s + 1 : e - 1] = ids[0, s + 1 : e - 1]
            loss = loss + lm_weight * lm_loss(logits, labels) * len(chunk)
        if copy_weight:
            labels = torch.full((1, len(tokens)), IGNORE, device=device)
            labels[0, repeat[0] + 1 : repeat[1]] = ids[0, repeat[0] + 1 : repeat[1]]
            loss = loss + copy_weight * lm_loss(logits, labels) * len(chunk)
        total_loss = total_loss + loss
        correct += int((choice.argmax(-1) == tgt).sum())
    return total_loss / len(questions), correct, len(questions)
