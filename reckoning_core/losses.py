"""Fact (knowledge) loss, answer loss and the multi-task outer target."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

IGNORE = -100


def upcast(t: Tensor) -> Tensor:
    """Half-precision logits to float32 for the loss; float32/float64 stay as they are."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def lm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Causal-LM loss on the labelled tokens only (labels == IGNORE elsewhere).

    logits (B, T, V), labels (B, T); position t predicts token t + 1.
    """
    shift_logits = upcast(logits[:, :-1])  # (B, T-1, V)
    shift_labels = labels[:, 1:]  # (B, T-1)
    return F.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1),
                           ignore_index=IGNORE)


def label_logits(logits: Tensor, last_index: Tensor, label_token_ids: Tensor) -> Tensor:
    """Logits of the single-token labels at each row's last prompt position. (B, C)"""
    rows = torch.arange(logits.shape[0], device=logits.device)
    return upcast(logits[rows, last_index][:, label_token_ids])


def answer_loss(choice_logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy over the choices. choice_logits (B, C), targets (B,)"""
    return F.cross_entropy(choice_logits, targets)


def multitask(answer: Tensor, fact: Tensor | None, fact_weight: float) -> Tensor:
    """RECKONING's outer objective: answer the questions and still reproduce the facts."""
    if fact is None or fact_weight == 0.0:
        return answer
    return answer + fact_weight * fact
