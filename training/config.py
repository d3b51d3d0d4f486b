"""TrainConfig: one YAML file per experiment, overridable with --set key=value; stored in every checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reckoning_core.device import AUTO, device_setting, resolve_device

QUESTION_SAMPLING = ("uniform", "depth")  # training.data.sampling.pick_questions


@dataclass
class TrainConfig:
    name: str = "run"
    method: str = "reckoning"  # "reckoning" (bi-level) or "icr" (facts in the prompt)
    out_dir: str = "runs/run"
    init_from: str | None = None  # a checkpoint folder (e.g. the ICR model) or None = from scratch
    seed: int = 0
    device: str = "auto"  # auto = $RECKONING_DEVICE when set, else CUDA when there is a GPU, else cpu
    threads: int = 2
    # model (from scratch only)
    arch: str = "gpt2"
    n_layer: int = 4
    d_model: int = 256
    n_head: int = 4
    n_positions: int = 512
    vocab_size: int = 1024
    # data
    data_dir: str | None = None  # default: RECKONING_DATA_DIR or ../shared/data
    gen_fraction: float = 0.5  # share of training theories from the generator (rest: owa_train)
    val_theories: int = 100  # owa_train theories held out for model selection (never trained on)
    max_questions: int = 48  # per theory per step
    question_sampling: str = "uniform"  # "uniform" subset, or "depth": balanced over proof depths (pick_questions)
    easy_fraction: float = 0.0  # curriculum: share of small theories at step 0 ...
    easy_until: int = 0  # ... decaying linearly to none at this step (0 = no curriculum)
    easy_kind: str = "small"  # "small" theories (<= 6 facts, <= 2 rules) or "lookup" (1-4 facts, no rules)
    mix: dict[str, float] = field(default_factory=dict)  # source -> weight (training.data.sampling.MixSampler)
    val_sets: list[str] = field(default_factory=lambda: ["owa"])  # held-out sets for model selection (mean)
    knowledge: str = "full"  # "full" theory, "proof" only, or "mix" (curriculum: proof-only share below)
    proof_share: float = 0.0
    # optimisation
    max_steps: int = 1000
    max_minutes: float = 0.0  # stop after this wall time (0 = no limit); resumable either way
    batch_theories: int = 8  # theories per outer step (per process)
    lr: float = 3e-4
    lr_lrs: float = 1e-2  # learning rate of the learned inner log-LRs
    weight_decay: float = 0.0
    warmup_steps: int = 50
    grad_clip: float = 1.0
    # RECKONING
    inner_steps: int = 4
    inner_optimizer: str = "sgd"
    inner_init_lr: float = 0.1
    fast_mode: str = "patterns"
    fast_patterns: list[str] = field(default_factory=lambda: [r"\.mlp\."])
    fast_rank: int = 8
    order: str = "second"  # "second" or "first"
    max_fact_tokens: int = 64  # a fact row's token budget (EncodeConfig.max_fact_tokens)
    lr_size_ref: int = 0  # sets past this many facts scale the inner LRs by sqrt(n / it) (EncodeConfig); 0: off
    pack_facts: bool = True  # several facts per inner-loop row (same loss as padded rows, tested)
    fact_template: str = "{fact}"  # how facts are written for the inner loop (PromptFormat.fact)
    fact_weight: float = 0.5  # multi-task: weight of the post-adaptation fact loss (0 = single-task)
    # ICR
    icr_blocks_per_row: int = 24
    icr_lm_weight: float = 0.1
    icr_lm_questions: bool = False  # LM loss on question tokens too (not only on the facts)
    icr_copy_weight: float = 0.0  # LM loss on a verbatim repeat of the facts (builds induction heads), 0 = off
    in_context_template: str = "Facts: {facts}\nQuestion: {question}\nAnswer:"  # PromptFormat.in_context
    context_fact_template: str = "{fact}"  # PromptFormat.context_fact: one fact inside the prompt
    context_sep: str = " "  # PromptFormat.context_sep: what joins the facts
    # evaluation / checkpoints
    eval_every: int = 100
    eval_theories: int = 60
    save_every: int = 50
    log_every: int = 10
    save_dtype: str = "float32"
    log_episodes: bool = False  # write each rank's episode ids per step (episodes-rankN.jsonl)

    def __post_init__(self) -> None:
        if self.question_sampling not in QUESTION_SAMPLING:
            raise ValueError(f"question_sampling must be one of {QUESTION_SAMPLING}, not {self.question_sampling!r}")
        # resolved once, so every tensor the run makes goes to one concrete device (and the checkpoint records it)
        self.device = resolve_device(device_setting() if self.device == AUTO else self.device)

    @classmethod
    def load(cls, path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
        raw: dict[str, Any] = {}
        if path:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        known = {f.name: f for f in dataclasses.fields(cls)}
        for key in raw:
            if key not in known:
                raise ValueError(f"unknown config key {key!r} in {path}")
        for item in overrides or []:
            if "=" not in item:
                raise ValueError(f"--set expects key=value, got {item!r}")
            key, value = item.split("=", 1)
            if key not in known:
                raise ValueError(f"unknown config key {key!r}")
            raw[key] = yaml.safe_load(value)
        return cls(**raw)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
