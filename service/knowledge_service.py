"""Encode/ask orchestration over engine and store: idempotent encode, single-flight re-encode, cache metrics."""

import logging
import time
from dataclasses import dataclass

from service.engine import Answer, DeltaError, Encoded, Engine, MergedWeights
from service.metrics import (
    DELTA_BYTES,
    DELTA_CACHE_HITS,
    DELTA_CACHE_MISSES,
    DELTA_REJECTED,
    ENCODE_SECONDS,
    INNER_LOSS,
    REENCODES,
)
from service.single_flight import SingleFlight
from service.store import DeltaStatus, KnowledgeRecord, KnowledgeStore
from service.weight_cache import WeightCache

log = logging.getLogger(__name__)

class UnknownKnowledge(LookupError):
    """No such knowledge id in this tenant's namespace (another tenant's id looks exactly the same)."""


class EmptyFactSet(ValueError):
    """Nothing is left of the facts once normalised."""


@dataclass(frozen=True)
class EncodeOutcome:
    record: KnowledgeRecord
    cached: bool  # True when this request ran no inner loop
    encode_ms: float  # inner-loop time spent on behalf of this request (0 when cached)


_Flight = tuple[Encoded, KnowledgeRecord]


class KnowledgeService:
    """The only place that decides when an inner loop runs."""

    def __init__(
        self, engine: Engine, store: KnowledgeStore, *, default_ttl_s: int, weight_cache_bytes: int = 0
    ) -> None:
        self.engine = engine
        self.store = store
        self.default_ttl_s = default_ttl_s
        self.weights = WeightCache(weight_cache_bytes)
        self._flights: SingleFlight[tuple[str, str], _Flight] = SingleFlight()

    async def _run_inner_loop(self, facts: list[str]) -> Encoded:
        encoded = await self.engine.encode(facts)
        ENCODE_SECONDS.observe(encoded.seconds)
        INNER_LOSS.observe(encoded.final_inner_loss)
        DELTA_BYTES.observe(len(encoded.blob))
        return encoded

    async def _encode_new(self, namespace: str, knowledge_id: str, facts: list[str], ttl_s: int) -> _Flight:
        encoded = await self._run_inner_loop(facts)
        record = KnowledgeRecord(
            knowledge_id=knowledge_id,
            facts=facts,
            created=time.time(),
            model=self.engine.model_name,
            fingerprint=self.engine.fingerprint,
            recall=encoded.recall,
            final_inner_loss=encoded.final_inner_loss,
            delta_bytes=len(encoded.blob),
            ttl_s=ttl_s,
            encode_ms=encoded.seconds * 1000.0,
        )
        # Facts first: a delta must never exist without the facts it can be rebuilt from.
        if not await self.store.put_knowledge(namespace, record):
            record = await self.store.get_knowledge(namespace, knowledge_id) or record
        await self.store.put_delta(namespace, knowledge_id, encoded.blob, ttl_s)
        self.weights.put((namespace, knowledge_id), encoded.blob, encoded.weights)
        await self._forget_if_deleted(namespace, knowledge_id)
        return encoded, record

    async def _reencode(self, namespace: str, record: KnowledgeRecord, ttl_s: int) -> _Flight:
        encoded = await self._run_inner_loop(record.facts)
        await self.store.put_delta(namespace, record.knowledge_id, encoded.blob, ttl_s)
        self.weights.put((namespace, record.knowledge_id), encoded.blob, encoded.weights)
        await self._forget_if_deleted(namespace, record.knowledge_id)
        REENCODES.inc()
        log.info("re-encoded %s (%d facts) in %.0f ms", record.knowledge_id[:12], record.n_facts, encoded.seconds * 1e3)
        return encoded, record

    async def _forget_if_deleted(self, namespace: str, knowledge_id: str) -> None:
        # A DELETE that landed while the inner loop ran removed the facts and the old delta, but not the
        # delta written just now: without this, deleted knowledge would stay stored in weight form until
        # its TTL. Checked after the write, so a DELETE landing later removes the delta itself.
        if await self.store.get_knowledge(namespace, knowledge_id) is None:
            self.weights.invalidate((namespace, knowledge_id))
            await self.store.delete_delta(namespace, knowledge_id)

    async def encode(self, namespace: str, facts: list[str], ttl_s: int | None) -> EncodeOutcome:
        normalized = self.engine.normalize_facts(facts)
        if not normalized:
            raise EmptyFactSet("no facts left after normalisation")
        knowledge_id = self.engine.knowledge_id(normalized)
        key = (namespace, knowledge_id)

        record = await self.store.get_knowledge(namespace, knowledge_id)
        if record is not None:
            if (await self.store.delta_status(namespace, knowledge_id)).cached:
                DELTA_CACHE_HITS.inc()
                if ttl_s is not None:
                    await self.store.touch_delta(namespace, knowledge_id, ttl_s)
                return EncodeOutcome(record, cached=True, encode_ms=0.0)
            DELTA_CACHE_MISSES.inc()
            known, ttl = record, ttl_s or record.ttl_s
            (encoded, record), leader = await self._flights.run(key, lambda: self._reencode(namespace, known, ttl))
        else:
            ttl = ttl_s or self.default_ttl_s
            (encoded, record), leader = await self._flights.run(
                key, lambda: self._encode_new(namespace, knowledge_id, normalized, ttl)
            )
        return EncodeOutcome(record, cached=not leader, encode_ms=encoded.seconds * 1000.0 if leader else 0.0)

    async def _usable_weights(self, namespace: str, record: KnowledgeRecord) -> MergedWeights:
        key = (namespace, record.knowledge_id)
        blob = await self.store.get_delta(namespace, record.knowledge_id)
        if blob is not None:
            weights = self.weights.get(key, blob)
            if weights is not None:
                DELTA_CACHE_HITS.inc()
                return weights
            version = self.weights.version
            try:
                weights = await self.engine.load_weights(blob)
            except DeltaError as exc:  # refused (other model, bad checksum, not a delta): rebuild it
                DELTA_REJECTED.labels(reason=type(exc).__name__).inc()
                log.warning("refused cached delta %s…: %s: %s", record.knowledge_id[:12], type(exc).__name__, exc)
            else:
                self.weights.put(key, blob, weights, version)
                DELTA_CACHE_HITS.inc()
                return weights
        DELTA_CACHE_MISSES.inc()
        (encoded, _), _ = await self._flights.run(key, lambda: self._reencode(namespace, record, record.ttl_s))
        return encoded.weights

    async def ask(
        self,
        namespace: str,
        knowledge_id: str,
        questions: list[str],
        *,
        choices: list[str] | None,
        max_new_tokens: int,
    ) -> list[Answer]:
        record = await self.store.get_knowledge(namespace, knowledge_id)
        if record is None:
            raise UnknownKnowledge(knowledge_id)
        weights = await self._usable_weights(namespace, record)
        return await self.engine.answer(questions, weights, choices=choices, max_new_tokens=max_new_tokens)

    async def info(self, namespace: str, knowledge_id: str) -> tuple[KnowledgeRecord, DeltaStatus]:
        record = await self.store.get_knowledge(namespace, knowledge_id)
        if record is None:
            raise UnknownKnowledge(knowledge_id)
        return record, await self.store.delta_status(namespace, knowledge_id)

    async def delete(self, namespace: str, knowledge_id: str) -> None:
        self.weights.invalidate((namespace, knowledge_id))
        if not await self.store.delete_knowledge(namespace, knowledge_id):
            raise UnknownKnowledge(knowledge_id)
