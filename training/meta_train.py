"""The RECKONING outer loop, top to bottom: data, model, one outer step, evaluate, save."""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from pathlib import Path
from typing import Any

import torch

from reckoning_core.architecture import new_causal_lm
from reckoning_core.batching import fact_batch, packed_fact_batch, prompt_batch
from reckoning_core.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from reckoning_core.config import EncodeConfig, FastWeightSpec, PromptFormat, ReckoningConfig
from reckoning_core.fast_weights import forward, init_fast, merge
from reckoning_core.inner_loop import adapt, fact_loss, size_scaled_lrs
from reckoning_core.losses import answer_loss, label_logits, multitask
from reckoning_core.reckoner import Reckoner
from reckoning_core.tokenizer import train_bpe
from training.baseline import icr_episode_loss
from training.config import TrainConfig
from training.data.episode import Episode
from training.data.proofwriter import LABELS
from training.data.sampling import Splits, build_sampler, knowledge_for, load_splits, pick_questions
from training.data.theory_gen import iter_episodes
from training.distributed import all_reduce_grads, any_rank, barrier, dist_setup, gather
from training.evaluate import evaluate
from training.train_log import TrainLog
from training.train_state import atomic_save, load_state, rank_rng_state, rng_to_json, save_state

# ----------------------------------------------------------------------------- setup


def reckoning_config(cfg: TrainConfig) -> ReckoningConfig:
    spec = FastWeightSpec(mode=cfg.fast_mode, patterns=tuple(cfg.fast_patterns), rank=cfg.fast_rank)  # type: ignore[arg-type]
    enc = EncodeConfig(inner_steps=cfg.inner_steps, optimizer=cfg.inner_optimizer,  # type: ignore[arg-type]
                       init_lr=cfg.inner_init_lr, max_fact_tokens=cfg.max_fact_tokens, fast_weights=spec,
                       lr_size_ref=cfg.lr_size_ref)
    return ReckoningConfig(encode=enc, prompt=PromptFormat(
        fact=cfg.fact_template, in_context=cfg.in_context_template, context_fact=cfg.context_fact_template,
        context_sep=cfg.context_sep), labels=LABELS)


def tokenizer_corpus(train: list[Episode], n_generated: int = 3000) -> list[str]:
    """Domain text: theories, questions and answers in both prompt formats."""
    prompt = PromptFormat()
    texts: list[str] = []
    gen = iter_episodes(seed=12345)
    for ep in [*train, *(next(gen) for _ in range(n_generated))]:
        texts.extend(ep.facts)
        for q in ep.questions:
            texts.append(prompt.question_prompt(q.text) + prompt.answer_prefix + q.answer)
        texts.append(prompt.in_context_prompt(list(ep.facts), ep.questions[0].text) + " " + ep.questions[0].answer)
    return texts


def build_checkpoint(cfg: TrainConfig, train: list[Episode]) -> Checkpoint:
    rcfg = reckoning_config(cfg)
    if cfg.init_from:
        ckpt = load_checkpoint(cfg.init_from, device=cfg.device, attn_implementation="eager")
        if ckpt.config != rcfg:
            ckpt = ckpt.with_config(rcfg)
        return ckpt
    tok = train_bpe(tokenizer_corpus(train), vocab_size=cfg.vocab_size)
    model = new_causal_lm(tok, arch=cfg.arch, n_layer=cfg.n_layer, d_model=cfg.d_model, n_head=cfg.n_head,
                          n_positions=cfg.n_positions, seed=cfg.seed)
    return Checkpoint(model.to(cfg.device), tok, rcfg, name=cfg.name)  # type: ignore[arg-type]


def label_token_ids(ckpt: Checkpoint) -> dict[str, int]:
    ids = {}
    for label in LABELS:
        toks = ckpt.tokenizer(ckpt.config.prompt.answer_prefix + label, add_special_tokens=False)["input_ids"]
        if len(toks) != 1:
            raise ValueError(f"label {label!r} is not one token for this tokenizer: {toks}")
        ids[label] = toks[0]
    return ids


def make_optimizer(ckpt: Checkpoint, cfg: TrainConfig) -> tuple[torch.optim.Optimizer, list[torch.Tensor]]:
    """AdamW over the model, plus the learned inner log-LRs (their own LR) for RECKONING."""
    for v in ckpt.log_lrs.values():
        v.requires_grad_(cfg.method == "reckoning")
    params: list[torch.Tensor] = [p for p in ckpt.model.parameters() if p.requires_grad]
    groups: list[dict[str, Any]] = [{"params": params, "lr": cfg.lr, "weight_decay": cfg.weight_decay}]
    if cfg.method == "reckoning":
        groups.append({"params": list(ckpt.log_lrs.values()), "lr": cfg.lr_lrs, "weight_decay": 0.0})
    return torch.optim.AdamW(groups, betas=(0.9, 0.98)), params


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then a cosine down to a tenth."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


# ----------------------------------------------------------------------------- one episode


def reckoning_episode_loss(ckpt: Checkpoint, cfg: TrainConfig, ep: Episode, label_ids: dict[str, int],
                           rng: random.Random) -> tuple[torch.Tensor, int, int, float]:
    """Inner loop on the facts, then the answer (+ fact) loss with the adapted weights."""
    model, tok, enc = ckpt.model, ckpt.tokenizer, ckpt.config.encode
    questions = pick_questions(ep, cfg.max_questions, rng, cfg.question_sampling)
    facts = knowledge_for(ep, questions, cfg.knowledge, rng, cfg.proof_share)
    texts = [ckpt.config.prompt.fact_text(f) for f in facts]
    dtype = next(model.parameters()).dtype
    # packed rows: the same loss as one padded row per fact (tested), minus the padding's compute
    batch = (packed_fact_batch(tok, texts, enc.max_fact_tokens, cfg.device, dtype=dtype) if cfg.pack_facts
             else fact_batch(tok, texts, enc.max_fact_tokens, cfg.device))
    base = dict(model.named_parameters())  # live parameters: the outer loop trains them
    fast0 = init_fast(model, enc.fast_weights, ckpt.lora_init)
    log_lrs = size_scaled_lrs(ckpt.log_lrs, enc, len(texts))  # as serving scales them (off unless lr_size_ref)
    res = adapt(model, base, fast0, batch, log_lrs, enc, order=cfg.order)  # type: ignore[arg-type]
    qb = prompt_batch(tok, [ckpt.config.prompt.question_prompt(q.text) for q in questions], cfg.device)
    logits = forward(model, merge(base, res.fast), qb.input_ids, qb.attention_mask)  # (Q, T, V)
    choice = label_logits(logits, qb.last, torch.tensor(list(label_ids.values()), device=cfg.device))  # (Q, 3)
    targets = torch.tensor([LABELS.index(q.answer) for q in questions], device=cfg.device)
    # the fact loss after adaptation, on the very rows (and position ids) the inner loop used
    fact = fact_loss(model, base, res.fast, batch) if cfg.fact_weight > 0 else None
    loss = multitask(answer_loss(choice, targets), fact, cfg.fact_weight)
    correct = int((choice.argmax(-1) == targets).sum())
    inner_final = float(res.losses[-1]) if res.losses else float("nan")
    return loss, correct, len(questions), inner_final


# ----------------------------------------------------------------------------- evaluation and saving


def validate(ckpt: Checkpoint, cfg: TrainConfig, splits: Splits) -> dict[str, Any]:
    """Accuracy on each held-out validation set; model selection uses their mean."""
    ckpt.model.eval()
    reckoner = Reckoner(ckpt, cfg.device)
    method = "icr" if cfg.method == "icr" else "reckoning"
    by_set = {name: evaluate(reckoner, eps[: cfg.eval_theories], method=method, setting="full-theory",
                             with_recall=False)["accuracy"] for name, eps in splits.val_sets().items()}
    ckpt.model.train()
    scores = [a for a in by_set.values() if a is not None]
    return {"accuracy": round(sum(scores) / len(scores), 4) if scores else None, "by_set": by_set}


def save_run(ckpt: Checkpoint, dest: Path, cfg: TrainConfig, opt: torch.optim.Optimizer | None = None,
             info: dict[str, Any] | None = None) -> None:
    """`best` is the shippable model (cfg.save_dtype); `last` keeps fp32 weights plus the optimizer to resume."""
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(cfg.save_dtype) if opt is None else None

    def write(tmp: Path) -> None:
        save_checkpoint(ckpt, tmp, dtype=dtype)
        if opt is not None:
            save_state(tmp, opt, info or {})

    atomic_save(dest, write)


# ----------------------------------------------------------------------------- main


def train(cfg: TrainConfig) -> Path:
    rank, world = dist_setup()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + rank)
    out = Path(cfg.out_dir)
    last, best = out / "last", out / "best"
    splits = load_splits(cfg)
    resume = (last / "trainer_state.json").exists()
    ckpt = load_checkpoint(last, device=cfg.device, attn_implementation="eager") if resume \
        else build_checkpoint(cfg, splits.train)
    model = ckpt.model
    model.train()
    label_ids = label_token_ids(ckpt)
    opt, params = make_optimizer(ckpt, cfg)
    base_lrs = [g["lr"] for g in opt.param_groups]
    sampler = build_sampler(cfg, splits, seed=cfg.seed + 1000 * rank)
    rng = random.Random(cfg.seed + 7 + rank)
    step, best_acc, elapsed0 = 0, -1.0, 0.0
    if resume:
        info = load_state(last, opt)
        step, best_acc, elapsed0 = info["step"], info["best_acc"], info["elapsed_s"]
        sampler.rng.setstate(rank_rng_state(info["sampler_rng"], rank))
        rng.setstate(rank_rng_state(info["rng"], rank))
        sampler.count = info["sampler_count"][rank] if rank < len(info["sampler_count"]) else 0
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        n_params = sum(p.numel() for p in model.parameters())
        print(f"{'resuming' if resume else 'starting'} {cfg.name} at step {step}: {cfg.method}, "
              f"{n_params / 1e6:.2f}M params, world {world}", flush=True)
    episode_loss = reckoning_episode_loss if cfg.method == "reckoning" else icr_episode_loss
    log = TrainLog(out, step, cfg.max_steps, active=rank == 0)
    episodes_log = open(out / f"episodes-rank{rank}.jsonl", "a") if cfg.log_episodes else None  # noqa: SIM115
    t0 = time.time()

    def checkpoint_last() -> None:
        # every rank's RNG and count, so each resumes on its own stream of episodes
        rngs = gather((rng_to_json(sampler.rng.getstate()), rng_to_json(rng.getstate()), sampler.count), world)
        if rank == 0:
            save_run(ckpt, last, cfg, opt, {
                "step": step, "best_acc": best_acc, "elapsed_s": elapsed0 + time.time() - t0,
                "sampler_rng": [r[0] for r in rngs], "rng": [r[1] for r in rngs],
                "sampler_count": [r[2] for r in rngs], "world": world, "config": cfg.to_dict()})

    while step < cfg.max_steps:
        out_of_time = bool(cfg.max_minutes) and (time.time() - t0) / 60 > cfg.max_minutes
        if any_rank(out_of_time, world):  # all ranks stop at the same step, or the all-reduce would hang
            break
        sampler.step = step
        for g, base_lr in zip(opt.param_groups, base_lrs, strict=True):
            g["lr"] = base_lr * lr_at(step, cfg)
        opt.zero_grad(set_to_none=True)
        tot_loss, tot_c, tot_n, inner, ids = 0.0, 0, 0, [], []
        for _ in range(cfg.batch_theories):
            ep = next(sampler)
            ids.append(f"{ep.id}:{hashlib.sha1(repr(ep.facts).encode()).hexdigest()[:10]}")
            loss, c, n, inner_final = episode_loss(ckpt, cfg, ep, label_ids, rng)
            (loss / cfg.batch_theories).backward()
            tot_loss += float(loss.detach()) / cfg.batch_theories
            tot_c, tot_n = tot_c + c, tot_n + n
            inner.append(inner_final)
        all_reduce_grads(params + (list(ckpt.log_lrs.values()) if cfg.method == "reckoning" else []), world)
        gnorm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
        opt.step()
        step += 1
        if episodes_log is not None:
            episodes_log.write(json.dumps({"step": step, "episodes": ids}) + "\n")
            episodes_log.flush()
        log.step(tot_loss, tot_c, tot_n, best_acc)
        record: dict[str, Any] = {"step": step, "loss": round(tot_loss, 4), "acc": round(tot_c / tot_n, 4),
                                  "gnorm": round(gnorm, 3), "lr": opt.param_groups[0]["lr"],
                                  "elapsed_s": round(elapsed0 + time.time() - t0, 1)}
        if cfg.method == "reckoning":
            record["inner_final"] = round(sum(inner) / len(inner), 4)
            record["mean_inner_lr"] = round(float(torch.stack([v.detach().exp().mean()
                                                               for v in ckpt.log_lrs.values()]).mean()), 4)
        if rank == 0 and (step % cfg.eval_every == 0 or step == cfg.max_steps):
            val = validate(ckpt, cfg, splits)
            record["val_acc"], record["val_by_set"] = val["accuracy"], val["by_set"]
            if val["accuracy"] is not None and val["accuracy"] > best_acc:
                best_acc = val["accuracy"]
                save_run(ckpt, best, cfg)
            record["best_acc"] = best_acc
        if step % cfg.log_every == 0 or "val_acc" in record:
            log.write(record, echo="val_acc" in record)
        if step % cfg.save_every == 0:
            checkpoint_last()
    checkpoint_last()
    if rank == 0 and not best.exists():
        save_run(ckpt, best, cfg)
    log.close()
    if episodes_log is not None:
        episodes_log.close()
    barrier(world)
    return best
