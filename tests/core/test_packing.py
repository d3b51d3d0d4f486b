"""Packed fact rows: the same loss, delta and second-order meta-gradient as one padded row per fact."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reckoning_core.batching import fact_batch, packed_fact_batch, prompt_batch
from reckoning_core.checkpoint import load_checkpoint
from reckoning_core.config import EncodeConfig, FastWeightSpec
from reckoning_core.fast_weights import forward, init_fast, merge
from reckoning_core.inner_loop import adapt, fact_loss, init_log_lrs

FACTS = ["Bob is blue.", "If someone is blue then they are nice and kind to everyone.", "Anne is kind.",
         "All red things are big.", "Bob is not cold."]
CONFIG = EncodeConfig(inner_steps=2, init_lr=0.3, fast_weights=FastWeightSpec(mode="patterns", patterns=(r"\.mlp\.",)))


Grads = dict[str, torch.Tensor]


def _meta_grads(path: Path, packed: bool, row_tokens: int = 512, width_multiple: int = 1) -> tuple[Grads, Grads]:
    ckpt = load_checkpoint(path)
    model = ckpt.model.double().eval()
    tok = ckpt.tokenizer
    batch = (packed_fact_batch(tok, FACTS, row_tokens=row_tokens, dtype=torch.float64, width_multiple=width_multiple)
             if packed else fact_batch(tok, FACTS))
    base = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()}
    fast0 = init_fast(model, CONFIG.fast_weights)
    lrs = {k: v.double() for k, v in init_log_lrs(fast0, CONFIG).items()}
    res = adapt(model, base, fast0, batch, lrs, CONFIG, order="second")
    qb = prompt_batch(tok, ["Question: Bob is nice.\nAnswer:"])
    logits = forward(model, merge(base, res.fast), qb.input_ids, qb.attention_mask)
    outer = logits[0, qb.last[0]].log_softmax(-1)[5] + fact_loss(model, base, res.fast, batch)
    names = list(base)
    grads = torch.autograd.grad(outer, [base[n] for n in names], allow_unused=True)
    meta = {n: g for n, g in zip(names, grads, strict=True) if g is not None}
    return {n: t.detach() for n, t in res.fast.items()}, meta


@pytest.mark.parametrize("arch", ["tiny_gpt2", "tiny_llama"])
@pytest.mark.parametrize("row_tokens", [512, 20])  # one row, or several rows with padding
@pytest.mark.parametrize("width_multiple", [1, 64])  # rows padded up to a shape bucket
def test_packed_rows_give_the_padded_delta_and_meta_gradient(arch: str, row_tokens: int, width_multiple: int,
                                                             request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(arch)
    fast_pad, grad_pad = _meta_grads(path, packed=False)
    fast_pack, grad_pack = _meta_grads(path, packed=True, row_tokens=row_tokens, width_multiple=width_multiple)
    for n in fast_pad:
        err = float((fast_pad[n] - fast_pack[n]).abs().max())
        assert torch.allclose(fast_pad[n], fast_pack[n], rtol=1e-7, atol=1e-9), (n, err)
    assert grad_pad.keys() == grad_pack.keys()
    for n in grad_pad:
        assert torch.allclose(grad_pad[n], grad_pack[n], rtol=1e-7, atol=1e-10), n
    # the delta is not trivially zero
    assert max(float(t.abs().max()) for t in fast_pad.values()) > 1e-4


def test_packing_removes_padding_and_bounds_rows(tiny_gpt2: Path) -> None:
    tok = load_checkpoint(tiny_gpt2).tokenizer
    padded = fact_batch(tok, FACTS)
    one = packed_fact_batch(tok, FACTS)
    assert one.input_ids.shape[0] == 1
    assert one.input_ids.numel() == int(padded.attention_mask.sum()) < padded.input_ids.numel()
    assert int((one.labels >= 0).sum()) == int((padded.labels[:, 1:] >= 0).sum())
    several = packed_fact_batch(tok, FACTS, row_tokens=20)
    longest = int(padded.attention_mask.sum(1).max())
    assert several.input_ids.shape[0] > 1 and several.input_ids.shape[1] <= max(20, longest)
    bucketed = packed_fact_batch(tok, FACTS, row_tokens=20, width_multiple=64)
    assert bucketed.input_ids.shape == (several.input_ids.shape[0], 64)
    with pytest.raises(ValueError):
        packed_fact_batch(tok, [])


def test_an_autocast_reckoner_pads_fact_rows_to_few_shapes(tiny_gpt2: Path) -> None:
    from reckoning_core.device import AUTOCAST_WIDTH_MULTIPLE
    from reckoning_core.reckoner import Reckoner

    plain = Reckoner.from_pretrained(tiny_gpt2)
    mixed = Reckoner.from_pretrained(tiny_gpt2, inner_autocast="bf16")
    assert (plain.fact_width_multiple, mixed.fact_width_multiple) == (1, AUTOCAST_WIDTH_MULTIPLE)
    widths = {mixed._fact_batch(FACTS[:k])[1].input_ids.shape[1] for k in range(1, len(FACTS) + 1)}
    assert widths and all(w % AUTOCAST_WIDTH_MULTIPLE == 0 for w in widths)
    assert len({plain._fact_batch(FACTS[:k])[1].input_ids.shape[1] for k in range(1, len(FACTS) + 1)}) > len(widths)
    with pytest.raises(ValueError, match="fact_width_multiple"):
        Reckoner.from_pretrained(tiny_gpt2, fact_width_multiple=0)
