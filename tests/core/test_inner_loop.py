"""The inner loop: meta-gradients against a hand-unrolled reference and finite differences."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.func import functional_call

from reckoning_core.batching import fact_batch, prompt_batch
from reckoning_core.checkpoint import load_checkpoint
from reckoning_core.config import EncodeConfig, FastWeightSpec
from reckoning_core.fast_weights import base_params, forward, init_fast, merge
from reckoning_core.inner_loop import adapt, init_log_lrs
from reckoning_core.losses import lm_loss

FACTS = ["Bob is blue.", "If someone is blue then they are nice.", "Anne is kind."]


def _setup(path: Path, steps: int = 2, optimizer: str = "sgd"):
    ckpt = load_checkpoint(path)
    model = ckpt.model.double().eval()
    config = EncodeConfig(inner_steps=steps, optimizer=optimizer, init_lr=0.3,  # type: ignore[arg-type]
                          fast_weights=FastWeightSpec(mode="patterns", patterns=(r"\.mlp\.",)))
    batch = fact_batch(ckpt.tokenizer, FACTS)
    qb = prompt_batch(ckpt.tokenizer, ["Question: Bob is nice.\nAnswer:"])
    return ckpt, model, config, batch, qb


def _outer(model, params, qb) -> torch.Tensor:
    logits = forward(model, params, qb.input_ids, qb.attention_mask)
    return logits[0, qb.last[0]].log_softmax(-1)[5]


def _meta_grad(model, config, batch, qb, order: str) -> dict[str, torch.Tensor]:
    base = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()}
    fast0 = init_fast(model, config.fast_weights)
    lrs = {k: v.double() for k, v in init_log_lrs(fast0, config).items()}
    res = adapt(model, base, fast0, batch, lrs, config, order=order)  # type: ignore[arg-type]
    loss = _outer(model, merge(base, res.fast), qb)
    names = list(base)
    grads = torch.autograd.grad(loss, [base[n] for n in names], allow_unused=True)
    return {n: (g if g is not None else torch.zeros_like(base[n])) for n, g in zip(names, grads, strict=True)}


def test_meta_gradient_matches_hand_unrolled_reference(tiny_gpt2: Path) -> None:
    _, model, config, batch, qb = _setup(tiny_gpt2, steps=3)
    got = _meta_grad(model, config, batch, qb, "second")

    # reference: the same three SGD steps written out by hand on whole parameter tensors
    base = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()}
    names = [n for n in base if ".mlp." in n]
    w = {n: base[n] for n in names}
    for _ in range(3):
        params = {**base, **w}
        out = functional_call(model, params, (batch.input_ids,), {"attention_mask": batch.attention_mask})
        loss = lm_loss(out.logits, batch.labels)
        g = torch.autograd.grad(loss, [w[n] for n in names], create_graph=True)
        w = {n: w[n] - 0.3 * gi for n, gi in zip(names, g, strict=True)}
    out = functional_call(model, {**base, **w}, (qb.input_ids,), {"attention_mask": qb.attention_mask})
    ref_loss = out.logits[0, qb.last[0]].log_softmax(-1)[5]
    ref = torch.autograd.grad(ref_loss, list(base.values()), allow_unused=True)
    for (n, r) in zip(base, ref, strict=True):
        r = r if r is not None else torch.zeros_like(base[n])
        err = (got[n] - r).norm() / r.norm().clamp_min(1e-30)
        assert err < 1e-6, (n, float(err))


def test_meta_gradient_matches_finite_differences(tiny_gpt2: Path) -> None:
    _, model, config, batch, qb = _setup(tiny_gpt2, steps=2)
    got = _meta_grad(model, config, batch, qb, "second")
    name = "transformer.h.0.attn.c_attn.weight"  # not adapted: reached only through the inner loop + outer pass

    def value(delta: float, idx: tuple[int, int]) -> float:
        base = {n: p.detach().clone() for n, p in model.named_parameters()}
        base[name][idx] += delta
        fast0 = init_fast(model, config.fast_weights)
        lrs = {k: v.double() for k, v in init_log_lrs(fast0, config).items()}
        res = adapt(model, base, fast0, batch, lrs, config, order="none")
        return float(_outer(model, merge(base, res.fast), qb))

    for idx in [(0, 0), (3, 7), (10, 20)]:
        eps = 1e-4
        fd = (value(eps, idx) - value(-eps, idx)) / (2 * eps)
        assert abs(fd - float(got[name][idx])) <= 1e-4 * abs(fd) + 1e-10, (idx, fd, float(got[name][idx]))


def test_second_order_differs_from_first_order(tiny_gpt2: Path) -> None:
    _, model, config, batch, qb = _setup(tiny_gpt2, steps=2)
    second = _meta_grad(model, config, batch, qb, "second")
    first = _meta_grad(model, config, batch, qb, "first")
    name = "transformer.h.0.attn.c_attn.weight"
    assert first[name].norm() > 0
    assert (second[name] - first[name]).norm() / second[name].norm() > 1e-3


def test_learned_lrs_get_gradients_in_both_orders(tiny_gpt2: Path) -> None:
    _, model, config, batch, qb = _setup(tiny_gpt2, steps=2)
    for order in ("first", "second"):
        base = base_params(model)
        fast0 = init_fast(model, config.fast_weights)
        lrs = {k: v.double().requires_grad_(True) for k, v in init_log_lrs(fast0, config).items()}
        res = adapt(model, base, fast0, batch, lrs, config, order=order)  # type: ignore[arg-type]
        loss = _outer(model, merge(base, res.fast), qb)
        grads = torch.autograd.grad(loss, list(lrs.values()))
        assert all(torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_inner_loop_lowers_fact_loss_on_gpt2_and_llama(arch: str, optimizer: str, tiny_gpt2: Path,
                                                        tiny_llama: Path) -> None:
    path = tiny_gpt2 if arch == "gpt2" else tiny_llama
    ckpt = load_checkpoint(path)
    config = EncodeConfig(inner_steps=4, optimizer=optimizer, init_lr=0.5 if optimizer == "sgd" else 0.01,  # type: ignore[arg-type]
                          fast_weights=FastWeightSpec(mode="all"))
    batch = fact_batch(ckpt.tokenizer, FACTS)
    fast0 = init_fast(ckpt.model, config.fast_weights)
    res = adapt(ckpt.model, base_params(ckpt.model), fast0, batch, init_log_lrs(fast0, config), config,
                final_loss=True)
    assert res.losses[-1] < res.losses[0]
    # second order also runs on this architecture
    base = {n: p.detach().clone().requires_grad_(True) for n, p in ckpt.model.named_parameters()}
    res2 = adapt(ckpt.model, base, fast0, batch, init_log_lrs(fast0, config), config, order="second")
    loss = lm_loss(forward(ckpt.model, merge(base, res2.fast), batch.input_ids, batch.attention_mask), batch.labels)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in base.values())


def test_lora_fast_weights_adapt(tiny_gpt2: Path) -> None:
    from reckoning_core.fast_weights import make_lora_init

    ckpt = load_checkpoint(tiny_gpt2)
    spec = FastWeightSpec(mode="lora", patterns=(r"\.mlp\.c_fc\.weight", r"\.mlp\.c_proj\.weight"), rank=4)
    config = EncodeConfig(inner_steps=4, init_lr=0.5, fast_weights=spec)
    lora = make_lora_init(ckpt.model, spec)
    fast0 = init_fast(ckpt.model, spec, lora)
    assert all(k.endswith((".lora_U", ".lora_V")) for k in fast0)
    batch = fact_batch(ckpt.tokenizer, FACTS)
    res = adapt(ckpt.model, base_params(ckpt.model), fast0, batch, init_log_lrs(fast0, config), config,
                final_loss=True)
    assert res.losses[-1] < res.losses[0]


def test_serving_loop_steps_the_weights_in_place_and_equals_the_general_loop(tiny_gpt2: Path) -> None:
    """order='none' with SGD on dense deltas runs _adapt_serving (W stepped in place); order='first' runs the
    general loop, whose values are the same. In float64 the deltas, losses and step counts agree, an adaptive
    stop included, and neither the base nor the caller's start point changes."""
    import reckoning_core.inner_loop as inner_loop

    _, model, config, batch, _ = _setup(tiny_gpt2, steps=4)
    base = base_params(model)
    base_before = {n: t.clone() for n, t in base.items()}
    fast0 = init_fast(model, config.fast_weights)
    log_lrs = {n: torch.linspace(-1.5, -0.5, config.inner_steps, dtype=torch.float64) for n in fast0}
    assert inner_loop._dense_like(base, fast0)

    served = adapt(model, base, fast0, batch, log_lrs, config, final_loss=True)
    general = adapt(model, base, fast0, batch, log_lrs, config, order="first", final_loss=True)
    assert served.steps == general.steps == config.inner_steps
    for n in fast0:
        torch.testing.assert_close(served.fast[n], general.fast[n].detach(), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(torch.stack(served.losses), torch.stack(general.losses), rtol=1e-9, atol=0.0)
    assert not any(t.requires_grad for t in served.fast.values())
    assert all(torch.equal(base[n], base_before[n]) for n in base)
    assert all(t.abs().sum() == 0 for t in fast0.values())

    losses = [float(x) for x in general.losses]
    assert losses[0] > losses[1] > losses[2]  # so a threshold just above the third loss stops after two steps
    stopped = adapt(model, base, fast0, batch, log_lrs, config, stop_below=losses[2] + 1e-9)
    two_steps = adapt(model, base, fast0, batch, log_lrs, EncodeConfig(
        inner_steps=2, optimizer="sgd", fast_weights=config.fast_weights), order="first")
    assert stopped.steps == 2
    for n in fast0:
        torch.testing.assert_close(stopped.fast[n], two_steps.fast[n].detach(), rtol=1e-9, atol=1e-12)


def test_serving_loop_under_bf16_autocast_uses_each_steps_weights(tiny_gpt2: Path) -> None:
    """Autocast caches its casts of leaf tensors that require grad: were the in-place stepped weights handed to
    the model as leaves, every step after the first would run on the first step's bf16 copy. Under autocast the
    serving loop and the general loop (fresh tensors every step) take the same steps."""
    from reckoning_core.device import inner_autocast

    ckpt = load_checkpoint(tiny_gpt2)
    model = ckpt.model.eval()
    config = EncodeConfig(inner_steps=4, optimizer="sgd", init_lr=0.3,
                          fast_weights=FastWeightSpec(mode="patterns", patterns=(r"\.mlp\.",)))
    batch = fact_batch(ckpt.tokenizer, FACTS)
    base = base_params(model)
    fast0 = init_fast(model, config.fast_weights)
    log_lrs = init_log_lrs(fast0, config)
    with inner_autocast("cpu", "bf16"):
        served = adapt(model, base, fast0, batch, log_lrs, config, final_loss=True)
        general = adapt(model, base, fast0, batch, log_lrs, config, order="first", final_loss=True)
    torch.testing.assert_close(torch.stack(served.losses), torch.stack(general.losses), rtol=2e-3, atol=0.0)
    for n in fast0:
        torch.testing.assert_close(served.fast[n], general.fast[n].detach(), rtol=1e-2, atol=1e-4)
