"""The RECKONING outer loop (and the FT-ICR baseline), top to bottom: data, model, step, eval, save."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from reckoning_core.architecture import new_causal_lm
from reckoning_core.batching import packed_fact_batch, prompt_batch
from reckoning_core.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from reckoning_core.config import EncodeConfig, FastWeightSpec, PromptFormat, ReckoningConfig
from reckoning_core.fast_weights import forward, init_fast, merge
from reckoning_core.inner_loop import adapt
from reckoning_core.losses import answer_loss, label_logits, lm_loss, multitask
from reckoning_core.reckoner import Reckoner
from reckoning_core.tokenizer import train_bpe
from training.baseline import icr_loss
from training.config import TrainConfig
from training.data.episode import Episode
from training.data.proofwriter import LABELS
from training.data.sampling import TheorySampler, knowledge_for, load_splits, pick_questions
from training.data.theory_gen import iter_episodes
from training.evaluate import evaluate
from training.train_state import load_state, rng_from_json, rng_to_json, save_state

# ----------------------------------------------------------------------------- setup


def reckoning_config(cfg: TrainConfig) -> ReckoningConfig:
    spec = FastWeightSpec(mode=cfg.fast_mode, patterns=tuple(cfg.fast_patterns), rank=cfg.fast_rank)  # type: ignore[arg-type]
    enc = EncodeConfig(inner_steps=cfg.inner_steps, optimizer=cfg.inner_optimizer,  # type: ignore[arg-type]
                       init_lr=cfg.inner_init_lr, fast_weights=spec)
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


# ----------------------------------------------------------------------------- one outer step


def reckoning_episode_loss(ckpt: Checkpoint, cfg: TrainConfig, ep: Episode, label_ids: dict[str, int],
                           rng: random.Random) -> tuple[torch.Tensor, int, int, float]:
    """Inner loop on the facts, then the answer (+ fact) loss with the adapted weights."""
    model, tok, enc = ckpt.model, ckpt.tokenizer, ckpt.config.encode
    questions = pick_questions(ep, cfg.max_questions, rng)
    facts = knowledge_for(ep, questions, cfg.knowledge, rng, cfg.proof_share)
    # packed: the same loss as one padded row per fact (tested), minus the padding's compute
    batch = packed_fact_batch(tok, [ckpt.config.prompt.fact_text(f) for f in facts], enc.max_fact_tokens,
                              cfg.device, dtype=next(model.parameters()).dtype)
    base = dict(model.named_parameters())  # live parameters: the outer loop trains them
    fast0 = init_fast(model, enc.fast_weights, ckpt.lora_init)
    res = adapt(model, base, fast0, batch, ckpt.log_lrs, enc, order=cfg.order)  # type: ignore[arg-type]
    adapted = merge(base, res.fast)
    qb = prompt_batch(tok, [ckpt.config.prompt.question_prompt(q.text) for q in questions], cfg.device)
    logits = forward(model, adapted, qb.input_ids, qb.attention_mask)  # (Q, T, V)
    choice = label_logits(logits, qb.last, torch.tensor(list(label_ids.values()), device=cfg.device))  # (Q, 3)
    targets = torch.tensor([LABELS.index(q.answer) for q in questions], device=cfg.device)
    ans = answer_loss(choice, targets)
    fact = None
    if cfg.fact_weight > 0:
        fact = lm_loss(forward(model, adapted, batch.input_ids, batch.attention_mask), batch.labels)
    loss = multitask(ans, fact, cfg.fact_weight)
    correct = int((choice.argmax(-1) == targets).sum())
    inner_final = float(res.losses[-1]) if res.losses else float("nan")
    return loss, correct, len(questions), inner_final


def icr_episode_loss(ckpt: Checkpoint, cfg: TrainConfig, ep: Episode, label_ids: dict[str, int],
                     rng: random.Random) -> tuple[torch.Tensor, int, int, float]:
    questions = pick_questions(ep, cfg.max_questions, rng)
    facts = knowledge_for(ep, questions, cfg.knowledge, rng, cfg.proof_share)
    params = dict(ckpt.model.named_parameters())
    loss, correct, n = icr_loss(ckpt.model, params, ckpt.tokenizer, ckpt.config.prompt, facts, questions,
                                label_ids, cfg.icr_blocks_per_row, cfg.icr_lm_weight, cfg.icr_lm_questions,
                                cfg.icr_copy_weight)
    return loss, correct, n, float("nan")


# ----------------------------------------------------------------------------- distributed helpers


def dist_setup() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return (dist.get_rank() if world > 1 else 0), world


def all_reduce_grads(params: list[torch.Tensor], world: int) -> None:
    if world == 1:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad /= world


# ----------------------------------------------------------------------------- main


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def validate(ckpt: Checkpoint, cfg: TrainConfig, val: list[Episode]) -> dict[str, Any]:
    ckpt.model.eval()
    reckoner = Reckoner(ckpt, cfg.device)
    method = "icr" if cfg.method == "icr" else "reckoning"
    out = evaluate(reckoner, val[: cfg.eval_theories], method=method, setting="full-theory", with_recall=False)
    return out


def train(cfg: TrainConfig) -> Path:
    rank, world = dist_setup()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + rank)
    out = Path(cfg.out_dir)
    last, best = out / "last", out / "best"
    splits = load_splits(cfg.data_dir, cfg.val_theories)
    resume = (last / "trainer_state.json").exists()
    if resume:
        ckpt = load_checkpoint(last, device=cfg.device, attn_implementation="eager")
    else:
        ckpt = build_checkpoint(cfg, splits.train)
    model = ckpt.model
    model.train()
    label_ids = label_token_ids(ckpt)
    for v in ckpt.log_lrs.values():
        v.requires_grad_(cfg.method == "reckoning")
    params = [p for p in model.parameters() if p.requires_grad]
    groups: list[dict[str, Any]] = [{"params": params, "lr": cfg.lr, "weight_decay": cfg.weight_decay}]
    if cfg.method == "reckoning":
        groups.append({"params": list(ckpt.log_lrs.values()), "lr": cfg.lr_lrs, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.98))
    base_lrs = [g["lr"] for g in opt.param_groups]
    sampler = TheorySampler(splits.train, cfg.gen_fraction, cfg.seed + 1000 * rank, cfg.easy_fraction,
                            cfg.easy_until, cfg.easy_kind)
    rng = random.Random(cfg.seed + 7 + rank)
    step, best_acc, elapsed0 = 0, -1.0, 0.0
    if resume:
        info = load_state(last, opt)
        step, best_acc, elapsed0 = info["step"], info["best_acc"], info["elapsed_s"]
        sampler.rng.setstate(rng_from_json(info["sampler_rng"][rank % len(info["sampler_rng"])]))
        rng.setstate(rng_from_json(info["rng"][rank % len(info["rng"])]))
        sampler.count = info.get("sampler_count", 0)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        n_params = sum(p.numel() for p in model.parameters())
        print(f"{'resuming' if resume else 'starting'} {cfg.name} at step {step}: {cfg.method}, "
              f"{n_params / 1e6:.2f}M params, world {world}", flush=True)
    episode_loss = reckoning_episode_loss if cfg.method == "reckoning" else icr_episode_loss
    log = open(out / "log.jsonl", "a") if rank == 0 else None  # noqa: SIM115
    t0 = time.time()
    bar = tqdm(total=cfg.max_steps, initial=step, disable=rank != 0, dynamic_ncols=True, mininterval=5)
    window: list[tuple[float, int, int]] = []

    def save(kind: Path) -> None:
        dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(cfg.save_dtype)
        tmp = kind.with_name(kind.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        save_checkpoint(ckpt, tmp, dtype=dtype if kind == best else None)
        if kind == last:
            rngs = [rng_to_json(sampler.rng.getstate())]
            save_state(tmp, opt, {"step": step, "best_acc": best_acc, "elapsed_s": elapsed0 + time.time() - t0,
                                  "sampler_rng": rngs, "rng": [rng_to_json(rng.getstate())],
                                  "sampler_count": sampler.count, "config": cfg.to_dict()})
        shutil.rmtree(kind, ignore_errors=True)
        tmp.rename(kind)

    while step < cfg.max_steps:
        if cfg.max_minutes and (time.time() - t0) / 60 > cfg.max_minutes:
            break
        sampler.step = step
        scale = lr_at(step, cfg)
        for g, base_lr in zip(opt.param_groups, base_lrs, strict=True):
            g["lr"] = base_lr * scale
        opt.zero_grad(set_to_none=True)
        tot_loss, tot_c, tot_n, inner = 0.0, 0, 0, []
        for _ in range(cfg.batch_theories):
            ep = next(sampler)
            loss, c, n, inner_final = episode_loss(ckpt, cfg, ep, label_ids, rng)
            (loss / cfg.batch_theories).backward()
            tot_loss += float(loss.detach()) / cfg.batch_theories
            tot_c, tot_n = tot_c + c, tot_n + n
            inner.append(inner_final)
        all_reduce_grads(params + (list(ckpt.log_lrs.values()) if cfg.method == "reckoning" else []), world)
        gnorm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
        opt.step()
        step += 1
        window.append((tot_loss, tot_c, tot_n))
        window = window[-50:]
        bar.update(1)
        if rank != 0:
            continue
        w_loss = sum(x[0] for x in window) / len(window)
        w_acc = sum(x[1] for x in window) / max(1, sum(x[2] for x in window))
        bar.set_postfix(loss=f"{w_loss:.3f}", acc=f"{w_acc:.3f}", best=f"{best_acc:.3f}")
        record: dict[str, Any] = {"step": step, "loss": round(tot_loss, 4), "acc": round(tot_c / tot_n, 4),
                                  "gnorm": round(gnorm, 3), "lr": opt.param_groups[0]["lr"],
                                  "elapsed_s": round(elapsed0 + time.time() - t0, 1)}
        if cfg.method == "reckoning":
            record["inner_final"] = round(sum(inner) / len(inner), 4)
            lrs = torch.stack([v.detach().exp().mean() for v in ckpt.log_lrs.values()])
            record["mean_inner_lr"] = round(float(lrs.mean()), 4)
        if step % cfg.eval_every == 0 or step == cfg.max_steps:
            val = validate(ckpt, cfg, splits.val)
            model.train()
            record["val_acc"] = val["accuracy"]
            if val["accuracy"] is not None and val["accuracy"] > best_acc:
                best_acc = val["accuracy"]
                save(best)
            record["best_acc"] = best_acc
            tqdm.write(json.dumps(record))
        if step % cfg.log_every == 0 or "val_acc" in record:
            assert log is not None
            log.write(json.dumps(record) + "\n")
            log.flush()
        if step % cfg.save_every == 0:
            save(last)
    if rank == 0:
        save(last)
        if not best.exists():
            save(best)
    bar.close()
    if world > 1:
        dist.barrier()
    return best
