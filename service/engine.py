"""The loaded model and the bounded thread pool that runs all torch work off the event loop."""

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from torch import Tensor
from transformers.utils import logging as hf_logging

from reckoning_core.batching import token_ids
from reckoning_core.compression import low_rank
from reckoning_core.device import InnerAutocast
from reckoning_core.reckoner import Answer, AnswerWeights, MergedWeights, Reckoner
from reckoning_core.serialization import DEFAULT_DELTA_DTYPE, DeltaDtype, DeltaError
from service.metrics import ENCODES_IN_FLIGHT

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["Answer", "DeltaError", "Encoded", "Engine", "InputTooLong", "MergedWeights"]


class InputTooLong(ValueError):
    """A question (with its prompt and longest choice) does not fit the model's context window."""

    def __init__(self, index: int, tokens: int, limit: int) -> None:
        super().__init__(f"question {index} needs {tokens} tokens with its prompt; the model's context is {limit}")
        self.index = index
        self.tokens = tokens
        self.limit = limit


@dataclass(frozen=True)
class Encoded:
    """One inner-loop run: the weights it gives (ready to answer with) and the serialized delta."""

    weights: MergedWeights
    blob: bytes
    n_facts: int
    recall: float
    final_inner_loss: float
    seconds: float


def stored_form(reckoner: Reckoner, delta: dict[str, Tensor], dtype: str, rank: int) -> tuple[bytes, dict[str, Tensor]]:
    """The delta as the store keeps it (rank-r SVD factors when rank > 0, at `dtype`): the blob, and the tensors
    it loads back as, so an encode's own answers equal those of every later ask (which load the blob)."""
    compact = low_rank(delta, rank) if rank else delta
    return reckoner.serialize_delta(compact, dtype=dtype), reckoner.round_trip(compact, dtype)


class Engine:
    """Owns the Reckoner; every torch call goes through one bounded executor."""

    def __init__(
        self,
        reckoner: Reckoner,
        *,
        max_concurrent_encodes: int = 1,
        delta_dtype: DeltaDtype = DEFAULT_DELTA_DTYPE,
        delta_rank: int = 0,
        load_workers: int = 1,
    ) -> None:
        self.reckoner = reckoner
        self.delta_dtype = delta_dtype
        self.delta_rank = delta_rank
        # Exactly one worker runs torch: functional_call swaps parameters on the shared module while it
        # runs, and two concurrent calls were measured answering with each other's deltas.
        # Each call still uses every core through torch's intra-op threads (RECKONING_TORCH_THREADS).
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reckoning-torch")
        # Verifying, deserializing and merging a stored delta never calls the module (it reads only the base
        # tensors, which nothing writes to), so it may run beside a forward pass: an ask for an id whose weights
        # are not cached then loads them on another core while the torch worker answers someone else.
        # 0 = load on the torch worker, as before this pool existed.
        self._load_pool = (
            ThreadPoolExecutor(max_workers=load_workers, thread_name_prefix="reckoning-load")
            if load_workers
            else self._pool
        )
        # Encodes are slow; admitting at most N to the pool keeps asks from queueing behind a pile of them.
        self._encode_slots = asyncio.Semaphore(max_concurrent_encodes)

    @classmethod
    def load(
        cls,
        model_dir: Path,
        *,
        torch_threads: int | None = None,
        max_concurrent_encodes: int = 1,
        delta_dtype: DeltaDtype = DEFAULT_DELTA_DTYPE,
        delta_rank: int = 0,
        load_workers: int = 1,
        device: str = "auto",
        inner_autocast: InnerAutocast = "off",
    ) -> "Engine":
        """Blocking: load the checkpoint (call from a thread during startup)."""
        if not Path(model_dir).is_dir():
            raise FileNotFoundError(
                f"model directory {str(model_dir)!r} does not exist; set RECKONING_MODEL_DIR or pass --model"
            )
        hf_logging.disable_progress_bar()  # no tqdm bars in server logs
        started = time.perf_counter()
        reckoner = Reckoner.from_pretrained(
            model_dir, device=device, torch_threads=torch_threads, inner_autocast=inner_autocast
        )
        log.info(
            "loaded model %s (fingerprint %s) on %s in %.1fs",
            reckoner.model_name,
            reckoner.fingerprint[:12],
            reckoner.device,
            time.perf_counter() - started,
        )
        return cls(
            reckoner,
            max_concurrent_encodes=max_concurrent_encodes,
            delta_dtype=delta_dtype,
            delta_rank=delta_rank,
            load_workers=load_workers,
        )

    # --- cheap, event-loop safe ---

    @property
    def fingerprint(self) -> str:
        return self.reckoner.fingerprint

    @property
    def model_name(self) -> str:
        return self.reckoner.model_name

    @property
    def labels(self) -> list[str] | None:
        return self.reckoner.labels

    def normalize_facts(self, facts: list[str]) -> list[str]:
        return self.reckoner.normalize_facts(facts)

    def knowledge_id(self, facts: list[str]) -> str:
        return self.reckoner.knowledge_id(facts)

    # --- torch work, in the pool ---

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def _encode_sync(self, facts: list[str]) -> Encoded:
        started = time.perf_counter()
        result = self.reckoner.encode(facts)
        blob, stored = stored_form(self.reckoner, result.delta, self.delta_dtype, self.delta_rank)
        return Encoded(
            weights=self.reckoner.merged(stored),
            blob=blob,
            n_facts=result.n_facts,
            recall=float(result.recall),
            final_inner_loss=float(result.final_inner_loss),
            seconds=time.perf_counter() - started,
        )

    async def encode(self, facts: list[str]) -> Encoded:
        ENCODES_IN_FLIGHT.inc()
        try:
            async with self._encode_slots:
                return await self._run(self._encode_sync, facts)
        finally:
            ENCODES_IN_FLIGHT.dec()

    def _load_weights_sync(self, blob: bytes) -> MergedWeights:
        return self.reckoner.merged(self.reckoner.deserialize_delta(blob))

    async def load_weights(self, blob: bytes) -> MergedWeights:
        """Verify and deserialize a cached blob, merged into the base weights.

        Raises DeltaError (wrong fingerprint, bad checksum, garbage)."""
        return await asyncio.get_running_loop().run_in_executor(self._load_pool, self._load_weights_sync, blob)

    def _context_tokens(self) -> int | None:
        config = getattr(getattr(self.reckoner, "model", None), "config", None)
        limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        return int(limit) if limit else None

    def _check_fits(self, questions: list[str], choices: list[str] | None) -> None:
        """Refuse prompts longer than the context: positions past it crash GPT-2 and silently degrade RoPE models."""
        limit = self._context_tokens()
        tokenizer = getattr(self.reckoner, "tokenizer", None)
        prompt = getattr(getattr(self.reckoner, "config", None), "prompt", None)
        if limit is None or tokenizer is None or prompt is None:
            return

        def n_tokens(text: str) -> int:
            return len(token_ids(tokenizer, text))

        options = choices or self.labels or []
        tail = max((n_tokens(" " + c) for c in options), default=0)
        for i, question in enumerate(questions):
            text = prompt.question_prompt(question)
            # Byte-level BPE never makes more tokens than bytes: skip tokenizing what surely fits.
            if len(text.encode("utf-8")) + tail + 3 <= limit:
                continue
            needed = 1 + n_tokens(text) + tail  # 1 = <bos>
            if needed > limit:
                raise InputTooLong(i, needed, limit)

    def _answer_sync(
        self, questions: list[str], weights: AnswerWeights, choices: list[str] | None, max_new_tokens: int
    ) -> list[Answer]:
        self._check_fits(questions, choices)
        return self.reckoner.answer(questions, weights, choices=choices, max_new_tokens=max_new_tokens)

    async def answer(
        self,
        questions: list[str],
        weights: AnswerWeights,
        *,
        choices: list[str] | None,
        max_new_tokens: int,
    ) -> list[Answer]:
        return await self._run(self._answer_sync, questions, weights, choices, max_new_tokens)

    def close(self) -> None:
        if self._load_pool is not self._pool:
            self._load_pool.shutdown(wait=True, cancel_futures=True)
        self._pool.shutdown(wait=True, cancel_futures=True)
