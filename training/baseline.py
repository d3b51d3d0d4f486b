"""Fine-tuned in-context reasoning (FT-ICR): the theory in the prompt, many questions packed per row."""

from __future__ import annotations

import random
from collections.abc import Mapping

import torch
from torch import Tensor, nn
from transformers import PreTrainedTokenizerBase

from reckoning_core.batching import packed_attention_mask, token_ids
from reckoning_core.checkpoint import Checkpoint
from reckoning_core.config import PromptFormat
from reckoning_core.fast_weights import forward
from reckoning_core.losses import IGNORE, answer_loss, lm_loss
from training.config import TrainConfig
from training.data.episode import Episode, Question
from training.data.sampling import knowledge_for, pick_questions


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
        # the repeat block's positions run to 2 x the prefix: only where that fits the position window
        window: int = getattr(model, "config").n_positions  # noqa: B009 (nn.Module is untyped here)
        copy = bool(copy_weight) and 2 * prefix_len - 1 <= window
        if copy:
            repeat = (len(tokens), len(tokens) + prefix_len - 1)
            tokens = tokens + tokens[1:prefix_len]  # the facts text again, without <bos>
        mask, pos = block_mask(prefix_len, [*spans, repeat] if copy else spans, len(tokens))
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
        if copy:
            labels = torch.full((1, len(tokens)), IGNORE, device=device)
            labels[0, repeat[0] + 1 : repeat[1]] = ids[0, repeat[0] + 1 : repeat[1]]
            loss = loss + copy_weight * lm_loss(logits, labels) * len(chunk)
        total_loss = total_loss + loss
        correct += int((choice.argmax(-1) == tgt).sum())
    return total_loss / len(questions), correct, len(questions)


def fit_context(ckpt: Checkpoint, facts: list[str], questions: list[Question],
                reserve: int = 48) -> tuple[list[str], list[Question]]:
    """Knowledge that fits the position window: the full set if it does, else only the proofs' sentences of
    fewer and fewer of the questions. Labels hold under that cut: a proof keeps its sentences, and removing
    sentences never makes an Unknown provable (open world, monotone rules)."""
    limit = ckpt.model.config.n_positions - reserve
    prompt = ckpt.config.prompt
    facts_tpl, _ = split_in_context(prompt)

    def length(fs: list[str]) -> int:
        return len(token_ids(ckpt.tokenizer, facts_tpl.format(facts=prompt.context_text(fs)))) + 1

    while length(facts) > limit and len(questions) > 1:
        questions = questions[: len(questions) // 2]
        keep = {f for q in questions for f in (q.proof_facts or ())}
        facts = [f for f in facts if f in keep]
    if length(facts) > limit:
        raise ValueError(f"even one question's proof does not fit {limit} tokens in context")
    return facts, questions


def icr_episode_loss(ckpt: Checkpoint, cfg: TrainConfig, ep: Episode, label_ids: dict[str, int],
                     rng: random.Random) -> tuple[Tensor, int, int, float]:
    """FT-ICR's outer-step loss for one theory: the facts in the prompt, no inner loop (nan inner loss)."""
    questions = pick_questions(ep, cfg.max_questions, rng, cfg.question_sampling)
    facts = knowledge_for(ep, questions, cfg.knowledge, rng, cfg.proof_share)
    facts, questions = fit_context(ckpt, facts, questions)
    params = dict(ckpt.model.named_parameters())
    loss, correct, n = icr_loss(ckpt.model, params, ckpt.tokenizer, ckpt.config.prompt, facts, questions,
                                label_ids, cfg.icr_blocks_per_row, cfg.icr_lm_weight, cfg.icr_lm_questions,
                                cfg.icr_copy_weight)
    return loss, correct, n, float("nan")
