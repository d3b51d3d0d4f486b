"""Several knowledge sets through one inner loop: sets padded to one shape, torch.func.vmap over the sets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.func import grad, vmap

from reckoning_core.config import EncodeConfig
from reckoning_core.fast_weights import Params
from reckoning_core.inner_loop import FactBatch, fact_loss
from reckoning_core.losses import IGNORE


def stack_sets(batches: list[FactBatch], pad_id: int) -> FactBatch:
    """Packed fact batches of several sets padded to one (R, T) and stacked: every field gains a leading set
    dimension S. Added rows and columns are padding: no labels, and each padded position attends only to
    itself (a block of the set's mask), so every set's loss is the one its own batch gives."""
    if not batches:
        raise ValueError("no knowledge sets to stack")
    if any(b.position_ids is None or b.attention_mask.dim() != 4 for b in batches):
        raise ValueError("stack_sets takes packed batches (4-D masks, position ids): batching.packed_fact_batch")
    rows = max(b.input_ids.shape[0] for b in batches)
    width = max(b.input_ids.shape[1] for b in batches)
    first = batches[0]
    device, dtype = first.input_ids.device, first.attention_mask.dtype
    s = len(batches)
    ids = torch.full((s, rows, width), pad_id, dtype=torch.long, device=device)
    labels = torch.full((s, rows, width), IGNORE, dtype=torch.long, device=device)
    pos = torch.zeros((s, rows, width), dtype=torch.long, device=device)
    allow_self = torch.eye(width, dtype=torch.bool, device=device)
    mask = torch.zeros((s, rows, 1, width, width), dtype=dtype, device=device)
    mask.masked_fill_(~allow_self, torch.finfo(dtype).min)  # padding: attend to self only (no all-masked row)
    for i, b in enumerate(batches):
        r, t = b.input_ids.shape
        ids[i, :r, :t] = b.input_ids
        labels[i, :r, :t] = b.labels
        assert b.position_ids is not None
        pos[i, :r, :t] = b.position_ids
        mask[i, :r, :, :t, :t] = b.attention_mask
        if t < width:  # real rows' tokens never see the added columns
            mask[i, :r, :, :t, t:] = torch.finfo(dtype).min
    return FactBatch(ids, mask, labels, pos)


def adapt_sets(model: nn.Module, base: Mapping[str, Tensor], fast: Mapping[str, Tensor], stacked: FactBatch,
               log_lrs: Mapping[str, Tensor], config: EncodeConfig,
               lr_scales: Sequence[float] | None = None) -> list[Params]:
    """adapt(order="none") for S sets at once: the same K steps (SGD or Adam, the learned per-step LRs), with
    each set's own fast weights, its gradient from its own loss only (vmap of torch.func.grad). Returns one
    delta per set, equal to that set's single encode up to float rounding (tested). `lr_scales` multiplies
    each set's LRs (config.lr_scale of its size), as size_scaled_lrs does for one set.

    GPT-2's pad-token check (DESIGN section 4) is data-dependent only without an attention mask; the
    stacked batch always carries one, so vmap runs.
    """
    if stacked.position_ids is None:
        raise ValueError("adapt_sets takes a batch from stack_sets")
    positions = stacked.position_ids
    n_sets = stacked.input_ids.shape[0]
    names = list(fast)
    cur: Params = {n: t.detach().expand(n_sets, *t.shape).clone() for n, t in fast.items()}
    if lr_scales is not None and len(lr_scales) != n_sets:
        raise ValueError(f"{len(lr_scales)} LR scales for {n_sets} knowledge sets")
    scales = torch.tensor(list(lr_scales) if lr_scales is not None else [1.0] * n_sets,
                          device=stacked.input_ids.device)

    def loss(f: Params, ids: Tensor, mask: Tensor, labels: Tensor, pos: Tensor) -> Tensor:
        return fact_loss(model, base, f, FactBatch(ids, mask, labels, pos))

    per_set_grad = vmap(grad(loss))
    m: Params = {n: torch.zeros_like(t) for n, t in cur.items()}
    v: Params = {n: torch.zeros_like(t) for n, t in cur.items()}
    b1, b2 = config.adam_betas
    with torch.no_grad():
        for step in range(config.inner_steps):
            with torch.enable_grad():
                grads = per_set_grad(cur, stacked.input_ids, stacked.attention_mask, stacked.labels, positions)
            for n in names:
                g = grads[n]
                lr = log_lrs[n][step].exp() * scales.view(n_sets, *([1] * (g.dim() - 1)))
                if config.optimizer == "adam":
                    m[n] = b1 * m[n] + (1 - b1) * g
                    v[n] = b2 * v[n] + (1 - b2) * g * g
                    g = (m[n] / (1 - b1 ** (step + 1))) / (v[n] / (1 - b2 ** (step + 1)) + config.adam_eps).sqrt()
                cur[n] = cur[n] - lr * g
    return [{n: cur[n][i] for n in names} for i in range(n_sets)]
