"""The loaded model and the bounded thread pool that runs all torch work off the event loop."""

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from torch import Tensor
from transformers.utils import logging as hf_logging

from reckoning_core.answer import ANSWER_BATCH_TOKENS
from reckoning_core.compression import at_rank
from reckoning_core.device import DEFAULT_INNER_AUTOCAST, InnerAutocastSetting
from reckoning_core.reckoner import Answer, AnswerWeights, MergedWeights, Reckoner
from reckoning_core.serialization import DEFAULT_DELTA_DTYPE, DeltaDtype, DeltaError
from service.metrics import ENCODES_CANCELLED, ENCODES_IN_FLIGHT
from service.sizing import AskPlan, AskTooLarge, FactTooLong, InputTooLong, Sizer

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = [
    "Answer",
    "AskTooLarge",
    "DeltaError",
    "EncodeQueueFull",
    "Encoded",
    "Engine",
    "FactTooLong",
    "InputTooLong",
    "MergedWeights",
]


class EncodeQueueFull(Exception):
    """RECKONING_MAX_PENDING_ENCODES inner loops are already queued or running; the API answers 429."""

    def __init__(self, limit: int, retry_after_s: int) -> None:
        super().__init__(
            f"{limit} encodes are already queued or running, the limit max_pending_encodes={limit}; "
            f"retry in {retry_after_s} s"
        )
        self.retry_after_s = retry_after_s


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
    compact = at_rank(delta, rank)
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
        max_pending_encodes: int = 16,
        max_ask_tokens: int = 32768,
    ) -> None:
        self.reckoner = reckoner
        self.delta_dtype = delta_dtype
        self.delta_rank = delta_rank
        self.sizer = Sizer(reckoner, max_ask_tokens)
        self.max_concurrent_encodes = max_concurrent_encodes
        self.max_pending_encodes = max_pending_encodes
        self._pending = 0  # inner loops admitted and not finished (waiting for a slot, queued or running)
        self._encode_s = 1.0  # running mean of one inner loop's wall time, for Retry-After
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
        inner_autocast: InnerAutocastSetting = DEFAULT_INNER_AUTOCAST,
        max_pending_encodes: int = 16,
        max_ask_tokens: int = 32768,
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
            "loaded model %s (fingerprint %s) on %s in %.1fs; inner-loop autocast %s (setting %s)",
            reckoner.model_name,
            reckoner.fingerprint[:12],
            reckoner.device,
            time.perf_counter() - started,
            reckoner.inner_autocast,
            inner_autocast,
        )
        return cls(
            reckoner,
            max_concurrent_encodes=max_concurrent_encodes,
            delta_dtype=delta_dtype,
            delta_rank=delta_rank,
            load_workers=load_workers,
            max_pending_encodes=max_pending_encodes,
            max_ask_tokens=max_ask_tokens,
        )

    # --- cheap, event-loop safe ---

    @property
    def fingerprint(self) -> str:
        return self.reckoner.fingerprint

    @property
    def encode_hash(self) -> str:
        return self.reckoner.encode_hash

    @property
    def model_name(self) -> str:
        return self.reckoner.model_name

    @property
    def pending_encodes(self) -> int:
        return self._pending

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

    def retry_after_s(self) -> int:
        """Seconds until the encode queue has likely drained by one: what a 429 tells clients to wait."""
        waves = (self._pending + 1) / self.max_concurrent_encodes
        return max(1, min(60, math.ceil(waves * self._encode_s)))

    def _admit_encode(self) -> None:
        if self._pending >= self.max_pending_encodes:
            raise EncodeQueueFull(self.max_pending_encodes, self.retry_after_s())
        self._pending += 1
        ENCODES_IN_FLIGHT.set(self._pending)

    def _encode_finished(self, job: "Future[Encoded] | None") -> None:
        self._pending -= 1
        ENCODES_IN_FLIGHT.set(self._pending)
        if job is None or job.cancelled():
            ENCODES_CANCELLED.inc()  # its caller went away before the inner loop started: it never runs
        elif job.exception() is None:
            self._encode_s = 0.8 * self._encode_s + 0.2 * job.result().seconds

    async def encode(self, facts: list[str]) -> Encoded:
        """Run the inner loop on the torch worker. EncodeQueueFull when max_pending_encodes are already admitted.

        Cancelling the caller drops the work if it has not started (it waits for a slot or in the pool's
        queue); one already running finishes on the worker and counts as pending until then."""
        self._admit_encode()
        loop = asyncio.get_running_loop()
        job: Future[Encoded] | None = None
        try:
            async with self._encode_slots:
                job = self._pool.submit(self._encode_sync, facts)
                job.add_done_callback(lambda done: _call_soon(loop, self._encode_finished, done))
                return await asyncio.wrap_future(job)
        finally:
            if job is None:  # cancelled (or failed) while waiting for a slot
                self._encode_finished(None)

    async def check_facts(self, facts: list[str]) -> None:
        """FactTooLong when the inner loop would cut a fact (checked before any work is queued)."""
        await self.sizer.check_facts(facts)

    async def plan_ask(self, questions: list[str], choices: list[str] | None, max_new_tokens: int) -> AskPlan:
        """AskTooLarge / InputTooLong before any work is queued; else the per-question token costs."""
        return await self.sizer.plan_ask(questions, choices, max_new_tokens)

    async def beside(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU work that never touches the module (MACs over blobs) on the load pool, beside the torch worker."""
        return await asyncio.get_running_loop().run_in_executor(self._load_pool, functools.partial(fn, *args))

    def _load_weights_sync(self, blob: bytes, authenticate: Callable[[], None] | None) -> MergedWeights:
        if authenticate is None:
            return self.reckoner.merged(self.reckoner.deserialize_delta(blob))
        authenticate()  # raises unless every byte of the blob is the one this service wrote
        # The MAC just read every byte: the payload checksum (a second pass over the multi-MB blob) adds nothing.
        return self.reckoner.merged(self.reckoner.deserialize_delta(blob, checksum=False))

    async def load_weights(self, blob: bytes, authenticate: Callable[[], None] | None = None) -> MergedWeights:
        """Authenticate, deserialize and check a cached blob, merged into the base weights.

        `authenticate` must raise (a DeltaError) unless all of `blob` is authentic: the service's keyed MAC over
        its bytes. It runs first, and then stands in for the blob's payload checksum; without it the checksum
        is verified. Raises DeltaError (forged, wrong fingerprint, bad checksum, wrong names or shapes, NaN,
        garbage)."""
        return await asyncio.get_running_loop().run_in_executor(
            self._load_pool, self._load_weights_sync, blob, authenticate
        )

    async def answer(
        self,
        questions: list[str],
        weights: AnswerWeights,
        *,
        choices: list[str] | None,
        max_new_tokens: int,
        plan: AskPlan | None = None,
    ) -> list[Answer]:
        """Answer on the torch worker, a chunk of about ANSWER_BATCH_TOKENS tokens per job: a large ask lets
        other requests' jobs run between its chunks instead of holding the worker for all of its length."""
        plan = plan or await self.plan_ask(questions, choices, max_new_tokens)
        answers: list[Answer] = []
        for chunk in _chunks(plan.costs, ANSWER_BATCH_TOKENS):
            part = [questions[i] for i in chunk]
            answers += await self._run(self.reckoner.answer, part, weights, choices, max_new_tokens)
        return answers

    def close(self) -> None:
        self.sizer.close()
        if self._load_pool is not self._pool:
            self._load_pool.shutdown(wait=True, cancel_futures=True)
        self._pool.shutdown(wait=True, cancel_futures=True)


def _chunks(costs: list[int], budget: int) -> list[list[int]]:
    """Consecutive indices grouped so each group's summed cost stays within budget (at least one per group)."""
    groups: list[list[int]] = []
    total = 0
    for i, cost in enumerate(costs):
        if groups and total + cost <= budget:
            groups[-1].append(i)
            total += cost
        else:
            groups.append([i])
            total = cost
    return groups


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is already closed (a job that outlived shutdown)
        loop.call_soon_threadsafe(fn, *args)
