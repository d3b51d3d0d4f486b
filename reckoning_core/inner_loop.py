"""adapt(): K gradient steps of the fact loss on fast weights; pure, differentiable with create_graph."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from reckoning_core.config import EncodeConfig
from reckoning_core.fast_weights import Params, forward, merge
from reckoning_core.losses import lm_loss

Order = Literal["none", "first", "second"]


@dataclass
class FactBatch:
    """Fact tokens for the inner loop; labels are the facts' own tokens (IGNORE elsewhere).

    Either one fact per row with a 2-D padding mask, or several facts packed per row with a
    4-D additive mask (B, 1, T, T) that keeps each fact to itself and position ids restarting
    at every fact (see batching.packed_fact_batch): the same loss without the padding.
    """

    input_ids: Tensor  # (B, T)
    attention_mask: Tensor  # (B, T) or (B, 1, T, T)
    labels: Tensor  # (B, T)
    position_ids: Tensor | None = None  # (B, T), packed rows only


@dataclass
class AdaptResult:
    fast: Params
    losses: list[Tensor]  # fact loss before each step, then after the last step when requested
    steps: int = 0  # inner steps taken (fewer than config.inner_steps after an adaptive stop)


def init_log_lrs(fast: Mapping[str, Tensor], config: EncodeConfig) -> Params:
    """Learned inner LRs, one per step per tensor, stored as log so they stay positive."""
    return {n: torch.full((config.inner_steps,), math.log(config.init_lr)) for n in fast}


def size_scaled_lrs(log_lrs: Mapping[str, Tensor], config: EncodeConfig, n_facts: int) -> Mapping[str, Tensor]:
    """The learned log LRs for a set of n_facts: shifted by log(config.lr_scale(n_facts)), which keeps them
    differentiable; the same mapping when the scale is 1."""
    scale = config.lr_scale(n_facts)
    if scale == 1.0:
        return log_lrs
    return {n: v + math.log(scale) for n, v in log_lrs.items()}


def fact_loss(model: nn.Module, base: Mapping[str, Tensor], fast: Mapping[str, Tensor], batch: FactBatch) -> Tensor:
    return _loss(model, merge(base, fast), batch)


def adapt(
    model: nn.Module,
    base: Mapping[str, Tensor],
    fast: Mapping[str, Tensor],
    batch: FactBatch,
    log_lrs: Mapping[str, Tensor],
    config: EncodeConfig,
    order: Order = "none",
    final_loss: bool = False,
    stop_below: float | None = None,
) -> AdaptResult:
    """Run config.inner_steps steps of SGD or Adam on the fact loss, starting from `fast`.

    order "second": the result is a differentiable function of `fast`, `log_lrs` and the base
    parameters through the inner gradients (create_graph). "first": inner gradients are
    constants, so the outer gradient reaches the base at the adapted point (FOMAML) and the
    learned LRs still get theirs. "none": serving; nothing is tracked. The caller's tensors are
    never modified. `stop_below` (serving only) ends the loop before a step whose starting fact loss is
    already below it: an adaptive stop that costs nothing, since that loss is computed for the step anyway.
    """
    if order not in ("none", "first", "second"):
        raise ValueError(f"order must be none, first or second, not {order!r}")
    if order == "none" and config.optimizer == "sgd" and _dense_like(base, fast):
        return _adapt_serving(model, base, fast, batch, log_lrs, config, final_loss, stop_below)
    create_graph = order == "second"
    track = order != "none"
    names = list(fast)
    cur = dict(fast)
    if not track:
        cur = {n: t.detach().requires_grad_(True) for n, t in cur.items()}
    else:
        cur = {n: t if t.requires_grad else t.detach().requires_grad_(True) for n, t in cur.items()}
    m: Params = {n: torch.zeros_like(t) for n, t in cur.items()}
    v: Params = {n: torch.zeros_like(t) for n, t in cur.items()}
    b1, b2 = config.adam_betas
    if stop_below is not None and track:
        raise ValueError("stop_below is for serving (order='none'): a data-dependent stop has no meta-gradient")
    losses: list[Tensor] = []
    steps = 0
    for step in range(config.inner_steps):
        with torch.enable_grad():
            loss = fact_loss(model, base, cur, batch)
            if stop_below is not None and float(loss.detach()) < stop_below:
                losses.append(loss.detach())
                break
            grads = torch.autograd.grad(loss, [cur[n] for n in names], create_graph=create_graph)
        losses.append(loss.detach())
        steps += 1
        new: Params = {}
        for n, g in zip(names, grads, strict=True):
            lr = log_lrs[n][step].exp()
            if config.optimizer == "adam":
                m[n] = b1 * m[n] + (1 - b1) * g
                v[n] = b2 * v[n] + (1 - b2) * g * g
                m_hat = m[n] / (1 - b1 ** (step + 1))
                v_hat = v[n] / (1 - b2 ** (step + 1))
                # eps inside the root keeps its derivative finite at v = 0 (second order)
                upd = m_hat / (v_hat + config.adam_eps).sqrt()
            else:
                upd = g
            new[n] = cur[n] - lr * upd
        if not track:
            new = {n: t.detach().requires_grad_(True) for n, t in new.items()}
        cur = new
    if final_loss and steps == config.inner_steps:
        with torch.no_grad():
            losses.append(fact_loss(model, base, cur, batch).detach())
    if not track:
        cur = {n: t.detach() for n, t in cur.items()}
    return AdaptResult(cur, losses, steps)


def _dense_like(base: Mapping[str, Tensor], fast: Mapping[str, Tensor]) -> bool:
    """Every fast tensor is a dense delta of a base parameter of its shape and dtype."""
    return all(n in base and base[n].shape == t.shape and base[n].dtype == t.dtype for n, t in fast.items())


def _adapt_serving(
    model: nn.Module,
    base: Mapping[str, Tensor],
    fast: Mapping[str, Tensor],
    batch: FactBatch,
    log_lrs: Mapping[str, Tensor],
    config: EncodeConfig,
    final_loss: bool,
    stop_below: float | None,
) -> AdaptResult:
    """adapt() for serving with SGD on dense deltas: the same steps on the adapted weights themselves.

    The gradient of the fact loss with respect to a delta is its gradient with respect to base + delta, so
    the loop keeps W = base + delta and steps it in place (one fused W -= lr * g per tensor), instead of
    rebuilding base + delta for every forward and allocating each new delta (two elementwise passes and two
    allocations per matrix per step, saved). The delta is W - base once at the end; it equals the general
    loop's up to float rounding (tested in float64)."""
    names = list(fast)
    with torch.no_grad():
        weights = {n: (base[n] + fast[n]).requires_grad_(True) for n in names}
        # minus each step's LR as 0-d tensors on the LRs' device: a fused in-place step, no host sync
        neg_lrs = {n: -log_lrs[n].detach().exp() for n in names}
    losses: list[Tensor] = []
    steps = 0
    for step in range(config.inner_steps):
        with torch.enable_grad():
            # through views, never the leaves themselves: autocast caches its casts of leaves that require
            # grad for as long as its region lasts, and would answer later steps with the first step's weights
            loss = _loss(model, _through_views(base, weights), batch)
            if stop_below is not None and float(loss.detach()) < stop_below:
                losses.append(loss.detach())
                break
            grads = torch.autograd.grad(loss, [weights[n] for n in names])
        losses.append(loss.detach())
        steps += 1
        with torch.no_grad():
            for n, g in zip(names, grads, strict=True):
                weights[n].addcmul_(g, neg_lrs[n][step])
    with torch.no_grad():
        if final_loss and steps == config.inner_steps:
            losses.append(_loss(model, _through_views(base, weights), batch).detach())
        delta = {n: weights[n].detach() - base[n] for n in names}
    return AdaptResult(delta, losses, steps)


def _through_views(base: Mapping[str, Tensor], weights: Mapping[str, Tensor]) -> Params:
    return {**base, **{n: w.view_as(w) for n, w in weights.items()}}


def _loss(model: nn.Module, params: Mapping[str, Tensor], batch: FactBatch) -> Tensor:
    extra = {} if batch.position_ids is None else {"position_ids": batch.position_ids}
    return lm_loss(forward(model, params, batch.input_ids, batch.attention_mask, **extra), batch.labels)
