"""Training: ICR packing equals serving prompts, a smoke run that resumes, and 2-process data parallel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reckoning_core.batching import prompt_batch
from reckoning_core.checkpoint import load_checkpoint
from reckoning_core.config import PromptFormat
from reckoning_core.fast_weights import base_params, forward
from training.baseline import block_mask, icr_loss, packed_row
from training.config import TrainConfig
from training.data.episode import Question

REPO = Path(__file__).resolve().parents[2]
FACTS = ["Bob is blue.", "If someone is blue then they are nice.", "Anne is kind."]


FEWSHOT = PromptFormat(in_context="{facts}\nQuestion: {question}\nAnswer:",
                       context_fact="Question: {fact}\nAnswer: True", context_sep="\n")


@pytest.mark.parametrize("fmt", [None, FEWSHOT], ids=["default", "facts-as-answered-questions"])
def test_packed_icr_rows_match_the_serving_prompt(tiny_gpt2: Path, fmt: PromptFormat | None) -> None:
    ckpt = load_checkpoint(tiny_gpt2)
    tok, prompt = ckpt.tokenizer, fmt or ckpt.config.prompt
    label_ids = {lab: tok(" " + lab, add_special_tokens=False)["input_ids"][0] for lab in ("True", "False", "Unknown")}
    questions = [Question("Bob is nice.", "True"), Question("Anne is not big.", "Unknown")]
    tokens, spans, where, targets = packed_row(tok, prompt, FACTS, questions, label_ids)
    mask, pos = block_mask(spans[0][0], spans, len(tokens))
    logits = forward(ckpt.model, base_params(ckpt.model), torch.tensor([tokens]), mask, position_ids=pos)
    for q, w in zip(questions, where, strict=True):
        serving = prompt_batch(tok, [prompt.in_context_prompt(FACTS, q.text)])
        n = int(serving.last[0]) + 1
        start = next(s for s, _ in spans if s <= w < _)
        packed_ids = tokens[: spans[0][0]] + tokens[start : w + 1]
        assert packed_ids == serving.input_ids[0, :n].tolist()
        ref = forward(ckpt.model, base_params(ckpt.model), serving.input_ids, serving.attention_mask)
        assert torch.allclose(logits[0, w], ref[0, n - 1], atol=1e-4)
    assert targets == [0, 2]



def test_the_fact_repeat_block_adds_its_copy_loss_without_touching_the_answers(tiny_gpt2: Path) -> None:
    ckpt = load_checkpoint(tiny_gpt2)
    tok, prompt = ckpt.tokenizer, ckpt.config.prompt
    label_ids = {lab: tok(" " + lab, add_special_tokens=False)["input_ids"][0] for lab in ("True", "False", "Unknown")}
    questions = [Question("Bob is nice.", "True"), Question("Anne is not big.", "Unknown"),
                 Question("Bob is not blue.", "False")]
    params = base_params(ckpt.model)

    def loss(copy_weight: float) -> tuple[float, int]:
        value, correct, _ = icr_loss(ckpt.model, params, tok, prompt, FACTS, questions, label_ids,
                                     blocks_per_row=2, lm_weight=0.0, copy_weight=copy_weight)
        return float(value), correct

    plain, correct = loss(0.0)
    # the repeat block is masked off from the question blocks: the answers do not move
    assert loss(1e-9)[1] == correct and loss(1e-9)[0] == pytest.approx(plain, abs=1e-6)
    # and its loss is a random-init LM's on the repeated facts: ~ln(vocab) per token, not 0
    with_copy, _ = loss(1.0)
    assert with_copy - plain > 1.0


def _train(config: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "reckoning_cli", "train", "--config", str(config),
           "--set", f"out_dir={out}", *extra]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


@pytest.mark.usefixtures("shared_data")
def test_smoke_meta_training_runs_reloads_and_resumes(tmp_path: Path) -> None:
    config = REPO / "training" / "configs" / "smoke.yaml"
    out = tmp_path / "run"
    r = _train(config, out)
    assert r.returncode == 0, r.stderr[-3000:]
    log = _log(out)
    assert [x["step"] for x in log] == [1, 2, 3]
    assert all(torch.isfinite(torch.tensor(x["loss"])) for x in log)
    ckpt = load_checkpoint(out / "best")
    assert ckpt.config.labels == ("True", "False", "Unknown") and ckpt.log_lrs
    state = json.loads((out / "last" / "trainer_state.json").read_text())
    assert state["step"] == 3
    r = _train(config, out, "--set", "max_steps=5")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming smoke at step 3" in r.stdout
    assert [x["step"] for x in _log(out)] == [1, 2, 3, 4, 5]
    cfg = TrainConfig.load(config)
    assert cfg.method == "reckoning" and cfg.order == "second" and cfg.fact_weight > 0


def _torchrun(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    import socket

    with socket.socket() as s:  # torchrun's --master_port=0 hangs: pick a free port ourselves
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           "-m", "reckoning_cli", "train", "--config", str(REPO / "training/configs/smoke.yaml"),
           "--set", f"out_dir={out}", "--set", "batch_theories=1", "--set", "log_episodes=true", *extra]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def _episodes(out: Path, rank: int) -> dict[int, list[str]]:
    lines = (out / f"episodes-rank{rank}.jsonl").read_text().splitlines()
    return {x["step"]: x["episodes"] for x in map(json.loads, lines)}


@pytest.mark.usefixtures("shared_data")
def test_two_process_data_parallel_training_draws_distinct_episodes_before_and_after_a_resume(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    r = _torchrun(out, "--set", "max_steps=2", "--set", "eval_every=2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "world 2" in r.stdout
    assert [x["step"] for x in _log(out)] == [1, 2]
    assert (out / "best" / "model.safetensors").exists()
    state = json.loads((out / "last" / "trainer_state.json").read_text())
    assert len(state["sampler_rng"]) == 2 and state["sampler_rng"][0] != state["sampler_rng"][1]
    r = _torchrun(out, "--set", "max_steps=4", "--set", "eval_every=4")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming smoke at step 2" in r.stdout
    ranks = [_episodes(out, 0), _episodes(out, 1)]
    assert sorted(ranks[0]) == sorted(ranks[1]) == [1, 2, 3, 4]
    for step in (1, 2, 3, 4):  # the two ranks train on different theories at every step, resumed or not
        assert ranks[0][step] != ranks[1][step], step
    # and a resumed rank carries on its own stream: no theory of rank 0's after the resume is rank 1's too
    assert not set(ranks[0][3] + ranks[0][4]) & set(ranks[1][3] + ranks[1][4])


def test_episode_loss_is_the_same_on_packed_and_padded_fact_rows() -> None:
    import random

    from training.data.theory_gen import generate_episode
    from training.meta_train import label_token_ids, reckoning_episode_loss

    ckpt = load_checkpoint(REPO / "models" / "reckoning-proofwriter")  # single-token labels, trained weights
    ep = generate_episode(random.Random(3))
    losses = []
    for pack in (True, False):
        cfg = TrainConfig(pack_facts=pack, max_questions=8, fact_weight=0.5)
        loss, *_ = reckoning_episode_loss(ckpt, cfg, ep, label_token_ids(ckpt), random.Random(0))
        losses.append(float(loss))
    assert losses[0] == pytest.approx(losses[1], rel=1e-4, abs=1e-5)
    # and the fact term matters: with position ids dropped on packed rows, this test fails (review finding)


def test_episode_loss_scales_the_inner_lrs_as_serving_does() -> None:
    """lr_size_ref applies in meta-training exactly as in Reckoner.encode: the same loss as LRs times sqrt(n/ref)."""
    import math
    import random
    from dataclasses import replace

    from training.data.theory_gen import generate_episode
    from training.meta_train import label_token_ids, reckoning_episode_loss

    ckpt = load_checkpoint(REPO / "models" / "reckoning-proofwriter")
    ep = generate_episode(random.Random(3))
    cfg = TrainConfig(max_questions=8, fact_weight=0.5)  # knowledge "full": every fact of the theory
    on = ckpt.with_lr_size_ref(2)
    by_hand = replace(ckpt, log_lrs={n: v + 0.5 * math.log(len(ep.facts) / 2) for n, v in ckpt.log_lrs.items()})
    losses = [float(reckoning_episode_loss(c, cfg, ep, label_token_ids(c), random.Random(0))[0])
              for c in (on, by_hand, ckpt)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-4, abs=1e-5)
    assert abs(losses[0] - losses[2]) > 1e-3  # the scale is in effect


def test_config_rejects_unknown_keys(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("n_layers: 3\n")
    with pytest.raises(ValueError, match="n_layers"):
        TrainConfig.load(p)
    with pytest.raises(ValueError, match="key=value"):
        TrainConfig.load(None, ["oops"])
