"""The encode configuration and prompt formats a checkpoint carries in reckoning.json."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

# The shipped model every command serves, evaluates and benchmarks unless told otherwise.
DEFAULT_MODEL_DIR = Path("models/reckoning-full-k2")

FORMAT_VERSION = 1

FastWeightMode = Literal["all", "patterns", "lora"]


@dataclass(frozen=True)
class FastWeightSpec:
    """Which parameters the inner loop adapts.

    mode "all": every parameter; "patterns": parameters whose name matches any regex in
    `patterns`; "lora": rank-`rank` factors U @ V added to the 2-D weights matching `patterns`.
    """

    mode: FastWeightMode = "patterns"
    patterns: tuple[str, ...] = (r"\.mlp\.",)
    rank: int = 8

    def __post_init__(self) -> None:
        if self.mode not in ("all", "patterns", "lora"):
            raise ValueError(f"fast_weights.mode must be all, patterns or lora, not {self.mode!r}")
        if self.mode != "all" and not self.patterns:
            raise ValueError("fast_weights.patterns must not be empty")
        if self.rank < 1:
            raise ValueError("fast_weights.rank must be >= 1")


@dataclass(frozen=True)
class EncodeConfig:
    """How facts are folded into weights: K inner steps of the fact LM loss."""

    inner_steps: int = 4
    optimizer: Literal["sgd", "adam"] = "sgd"
    init_lr: float = 0.1  # starting value of every learned per-step per-tensor LR
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    max_fact_tokens: int = 64
    fast_weights: FastWeightSpec = field(default_factory=FastWeightSpec)
    # 0: off. A set of n facts past this many scales every inner LR by sqrt(n / lr_size_ref). The inner loss is
    # a mean over the set's tokens, so each fact's pull weakens as sets outgrow the sizes meta-training saw.
    lr_size_ref: int = 0

    def __post_init__(self) -> None:
        if self.inner_steps < 0:
            raise ValueError("inner_steps must be >= 0")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be sgd or adam, not {self.optimizer!r}")
        if self.init_lr <= 0:
            raise ValueError("init_lr must be positive")
        if self.lr_size_ref < 0:
            raise ValueError("lr_size_ref must be >= 0 (0: off)")

    def lr_scale(self, n_facts: int) -> float:
        """What every inner LR is multiplied by for a set of n_facts (1.0 up to lr_size_ref, or when off)."""
        if not self.lr_size_ref or n_facts <= self.lr_size_ref:
            return 1.0
        return math.sqrt(n_facts / self.lr_size_ref)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        # off, it is left out: the hash, the fingerprints and every stored delta's id stay what they were before it
        if not self.lr_size_ref:
            del d["lr_size_ref"]
        return d

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class PromptFormat:
    """Text templates shared by training and serving, so both see the same prompts."""

    # How a fact is written for the inner loop's LM loss. "{fact}" is the plain sentence; a template
    # such as "Question: {fact}\nAnswer: True" writes knowledge in the same form the questions take.
    fact: str = "{fact}"
    question: str = "Question: {question}\nAnswer:"
    in_context: str = "Facts: {facts}\nQuestion: {question}\nAnswer:"
    answer_prefix: str = " "  # an answer's text follows the prompt after this
    # How each fact is written inside an in-context prompt, and what joins them. Writing facts as
    # answered questions ("Question: {fact}\nAnswer: True", joined by "\n") turns depth-0 lookups
    # into copying a seen pattern, which a model trained from scratch learns much sooner.
    context_fact: str = "{fact}"
    context_sep: str = " "

    def fact_text(self, fact: str) -> str:
        return self.fact.format(fact=fact)

    def question_prompt(self, question: str) -> str:
        return self.question.format(question=question)

    def context_text(self, facts: list[str]) -> str:
        return self.context_sep.join(self.context_fact.format(fact=f) for f in facts)

    def in_context_prompt(self, facts: list[str], question: str) -> str:
        return self.in_context.format(facts=self.context_text(facts), question=question)


@dataclass(frozen=True)
class ReckoningConfig:
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    prompt: PromptFormat = field(default_factory=PromptFormat)
    labels: tuple[str, ...] | None = None
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "encode": self.encode.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReckoningConfig:
        version = int(d.get("format_version", FORMAT_VERSION))
        if version > FORMAT_VERSION:
            raise ValueError(f"reckoning.json format_version {version} is newer than {FORMAT_VERSION}")
        enc = dict(d.get("encode", {}))
        fw = dict(enc.pop("fast_weights", {}))
        if "patterns" in fw:
            fw["patterns"] = tuple(fw["patterns"])
        if "adam_betas" in enc:
            enc["adam_betas"] = tuple(enc["adam_betas"])
        labels = d.get("labels")
        return cls(
            encode=EncodeConfig(**enc, fast_weights=FastWeightSpec(**fw)),
            prompt=PromptFormat(**d.get("prompt", {})),
            labels=tuple(labels) if labels else None,
            format_version=version,
        )
