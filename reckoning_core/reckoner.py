"""Reckoner: the serving facade over a checkpoint (encode facts, answer questions, (de)serialise deltas)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from reckoning_core import serialization
from reckoning_core.answer import generate, score_choices
from reckoning_core.batched_encode import adapt_sets, stack_sets
from reckoning_core.batching import packed_fact_batch
from reckoning_core.checkpoint import Checkpoint, load_checkpoint
from reckoning_core.delta_check import check_delta
from reckoning_core.device import (
    AUTOCAST_WIDTH_MULTIPLE,
    InnerAutocastSetting,
    inner_autocast,
    resolve_autocast,
    resolve_device,
)
from reckoning_core.fast_weights import adapted_names, base_params, init_fast, merge
from reckoning_core.inner_loop import FactBatch, adapt, size_scaled_lrs
from reckoning_core.knowledge_ids import knowledge_id, normalize_facts
from reckoning_core.low_rank_forward import FactorHooks, Factors, split
from reckoning_core.prefix_cache import PrefixCache, context_prefix, prefill, score_from_prefix
from reckoning_core.recall import fact_recall


@dataclass
class EncodeResult:
    delta: dict[str, Tensor]
    final_inner_loss: float
    recall: float
    n_facts: int
    steps: int = -1  # inner steps taken (-1: not recorded)


@dataclass(frozen=True)
class MergedWeights:
    """A delta made ready to answer with: no per-call merge.

    Dense parts are added into the base parameters (`params`); the low-rank factors of Linear/Conv1D weights
    (a delta stored at a rank) stay factors, applied in the forward pass (`factors`, see low_rank_forward).
    Only the tensors the delta changes and the factors are new memory (`nbytes`); the rest are the base's own.
    """

    params: dict[str, Tensor]
    nbytes: int
    factors: dict[str, Factors] = field(default_factory=dict)


AnswerWeights = dict[str, Tensor] | MergedWeights | None  # what to answer with: a delta, merged weights, or the base


@dataclass
class Answer:
    question: str
    answer: str
    scores: dict[str, float] | None


def _labelled(questions: list[str], options: list[str], probs: Tensor) -> list[Answer]:
    """Each question's most probable option, with every option's probability. probs (Q, C)"""
    out = []
    for q, row in zip(questions, probs.tolist(), strict=True):
        scores = dict(zip(options, row, strict=True))
        out.append(Answer(q, max(scores, key=scores.__getitem__), scores))
    return out


class Reckoner:
    """Loads once; every method is blocking CPU/GPU work.

    Not thread-safe: functional_call swaps the module's parameters for the duration of a call,
    so callers serialise access (the service runs torch work on a single worker thread).
    """

    def __init__(self, ckpt: Checkpoint, device: str = "cpu", inner_autocast: InnerAutocastSetting = "off",
                 fact_width_multiple: int | None = None) -> None:
        self.ckpt = ckpt
        self.device = resolve_device(device)  # "auto" -> cuda when there is one, else cpu
        self.inner_autocast = resolve_autocast(inner_autocast, self.device)  # "auto" -> what this device runs fast
        # Under autocast the low-precision matmuls go through oneDNN, which compiles and keeps kernels per shape:
        # fact rows padded to a multiple of 64 tokens keep that to a few shapes (bounded memory, fewer compiles).
        if fact_width_multiple is None:
            fact_width_multiple = AUTOCAST_WIDTH_MULTIPLE if self.inner_autocast != "off" else 1
        if fact_width_multiple < 1:
            raise ValueError(f"fact_width_multiple must be >= 1, not {fact_width_multiple}")
        self.fact_width_multiple = fact_width_multiple
        self.fingerprint = ckpt.fingerprint()  # before the move: the meta device has no bytes to hash
        self.model = ckpt.model.to(self.device).eval()  # type: ignore[arg-type]
        self.tokenizer = ckpt.tokenizer
        self.config = ckpt.config
        self.base = base_params(self.model)
        self.factor_hooks = FactorHooks(self.model)  # answers through a stored delta's low-rank factors
        self.dtype = next(iter(self.base.values())).dtype
        self.log_lrs = {k: v.to(self.device) for k, v in ckpt.log_lrs.items()}
        self.encode_hash = ckpt.config.encode.hash()
        self.model_name = ckpt.name
        self.labels: list[str] | None = list(ckpt.config.labels) if ckpt.config.labels else None
        spec = ckpt.config.encode.fast_weights
        # what a stored delta may hold (checked before every merge of one that was read back)
        self.adapted = {n: tuple(self.base[n].shape) for n in adapted_names(self.model, spec)}
        self.lora_rank = spec.rank if spec.mode == "lora" else None

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu", torch_threads: int | None = None,
                        attn_implementation: str = "sdpa",
                        inner_autocast: InnerAutocastSetting = "off",
                        fact_width_multiple: int | None = None) -> Reckoner:
        """Load for serving and evaluation. Encoding needs only first-order gradients, so the fused attention
        kernels serve here (meta-training's second order needs "eager": the fused CPU kernel has no double
        backward). On the shipped model they gave the same deltas as "eager" to 1e-6 and the same dev accuracy,
        overall and at every depth."""
        if torch_threads:
            torch.set_num_threads(torch_threads)
        device = resolve_device(device)
        return cls(load_checkpoint(path, device=device, attn_implementation=attn_implementation), device,
                   inner_autocast, fact_width_multiple)

    def normalize_facts(self, facts: list[str]) -> list[str]:
        return normalize_facts(facts)

    def knowledge_id(self, facts: list[str]) -> str:
        return knowledge_id(self.fingerprint, self.encode_hash, facts)

    def _fact_batch(self, facts: list[str]) -> tuple[list[str], FactBatch]:
        norm = [self.config.prompt.fact_text(f) for f in normalize_facts(facts)]
        # packed rows: the same delta as one padded row per fact (tested), without the padding's compute
        return norm, packed_fact_batch(self.tokenizer, norm, self.config.encode.max_fact_tokens, self.device,
                                       dtype=self.dtype, width_multiple=self.fact_width_multiple)

    def encode(self, facts: list[str], with_recall: bool = True, stop_below: float | None = None) -> EncodeResult:
        """Fold facts into a delta; `stop_below` stops the inner loop once the fact loss is below it."""
        enc = self.config.encode
        norm, batch = self._fact_batch(facts)
        fast0 = init_fast(self.model, enc.fast_weights, self.ckpt.lora_init)
        # the recall forward also gives the final fact loss, so adapt() need not run one more
        with inner_autocast(self.device, self.inner_autocast):
            result = adapt(self.model, self.base, fast0, batch, size_scaled_lrs(self.log_lrs, enc, len(norm)), enc,
                           order="none", final_loss=not with_recall, stop_below=stop_below)
        if with_recall:
            rec = fact_recall(self.model, merge(self.base, result.fast), self.tokenizer, norm, enc.max_fact_tokens)
            recall, final = rec.share, rec.loss
        else:
            recall, final = -1.0, float(result.losses[-1]) if result.losses else float("nan")
        return EncodeResult(result.fast, final, recall, len(norm), result.steps)

    def encode_many(self, fact_sets: list[list[str]]) -> list[dict[str, Tensor]]:
        """One delta per knowledge set, all sets through one inner loop (batched_encode); no recall check."""
        enc = self.config.encode
        prepared = [self._fact_batch(facts) for facts in fact_sets]
        stacked = stack_sets([batch for _, batch in prepared], self.tokenizer.pad_token_id)
        fast0 = init_fast(self.model, enc.fast_weights, self.ckpt.lora_init)
        with inner_autocast(self.device, self.inner_autocast):
            return adapt_sets(self.model, self.base, fast0, stacked, self.log_lrs, enc,
                              [enc.lr_scale(len(norm)) for norm, _ in prepared])

    def prefill_context(self, facts: list[str]) -> PrefixCache:
        """In-context reasoning with a prefix cache, step 1: the facts' keys and values, computed once."""
        return prefill(self.model, self.tokenizer, context_prefix(self.config.prompt, facts))

    def answer_from_context(self, cache: PrefixCache, facts: list[str], questions: list[str],
                            choices: list[str] | None = None) -> list[Answer]:
        """Step 2: score the choices for each question from the cache; equal to answer_in_context (tested)."""
        options = list(choices or self.labels or [])
        kept = [f for f in dict.fromkeys(" ".join(f.split()) for f in facts) if f]
        prompts = [self.config.prompt.in_context_prompt(kept, q) for q in questions]
        probs = score_from_prefix(self.model, self.tokenizer, cache, prompts, options,
                                  self.config.prompt.answer_prefix)
        return _labelled(questions, options, probs)

    @torch.no_grad()
    def merged(self, delta: dict[str, Tensor]) -> MergedWeights:
        """Make a delta ready once for answering many times: dense parts merged, factors kept (see MergedWeights)."""
        params, factors = split(self.model, self.base, delta)
        changed = [t for n, t in params.items() if t is not self.base[n]]
        nbytes = sum(t.numel() * t.element_size() for t in changed) + sum(f.nbytes for f in factors.values())
        return MergedWeights(params, nbytes, factors)

    def _answer(self, prompts: list[str], questions: list[str], weights: AnswerWeights,
                choices: list[str] | None, max_new_tokens: int) -> list[Answer]:
        if not isinstance(weights, MergedWeights):
            weights = MergedWeights(merge(self.base, weights), 0)
        options = choices or self.labels
        with self.factor_hooks.active(weights.factors):
            if options:
                probs = score_choices(self.model, weights.params, self.tokenizer, prompts, list(options),
                                      self.config.prompt.answer_prefix)
                return _labelled(questions, list(options), probs)
            texts = generate(self.model, weights.params, self.tokenizer, prompts, max_new_tokens)
        return [Answer(q, t, None) for q, t in zip(questions, texts, strict=True)]

    def answer(self, questions: list[str], weights: AnswerWeights, choices: list[str] | None = None,
               max_new_tokens: int = 16) -> list[Answer]:
        """Answer from the weights alone: `weights` is a delta, MergedWeights (faster), or None (the base)."""
        prompts = [self.config.prompt.question_prompt(q) for q in questions]
        return self._answer(prompts, questions, weights, choices, max_new_tokens)

    def answer_in_context(self, facts: list[str], questions: list[str], choices: list[str] | None = None,
                          max_new_tokens: int = 16) -> list[Answer]:
        # the prompt keeps the caller's order (duplicates dropped): order is part of the context
        kept = [f for f in dict.fromkeys(" ".join(f.split()) for f in facts) if f]
        prompts = [self.config.prompt.in_context_prompt(kept, q) for q in questions]
        return self._answer(prompts, questions, None, choices, max_new_tokens)

    def serialize_delta(self, delta: dict[str, Tensor], dtype: str = serialization.DEFAULT_DELTA_DTYPE) -> bytes:
        return serialization.dumps(delta, self.fingerprint, self.encode_hash, dtype)

    def round_trip(self, delta: dict[str, Tensor], dtype: str = serialization.DEFAULT_DELTA_DTYPE) -> dict[str, Tensor]:
        """The delta exactly as deserialize_delta(serialize_delta(delta, dtype)) returns it, without the bytes."""
        return serialization.round_trip(delta, dtype, self.device)

    def deserialize_delta(self, blob: bytes, *, checksum: bool = True) -> dict[str, Tensor]:
        """Parse, verify and check a stored delta: DeltaError unless it is this model's, intact, holds exactly
        the adapted tensors at their shapes, and is finite. `checksum=False` only for a blob whose every byte
        the caller has just authenticated (serialization.loads)."""
        delta = serialization.loads(blob, self.fingerprint, self.encode_hash, self.device, checksum=checksum)
        check_delta(delta, self.adapted, self.lora_rank)
        return delta

    @property
    def max_fact_tokens(self) -> int:
        """Tokens of one fact (as the fact template writes it) the inner loop reads; the rest would be cut."""
        return self.config.encode.max_fact_tokens - 2  # <bos> and <eos> take two of max_fact_tokens
