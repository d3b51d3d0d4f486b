"""Encode/ask orchestration over engine and store: idempotent encode, single-flight (re-)encode within and across
processes, signed deltas and records, quotas, cache metrics."""

import asyncio
import contextlib
import dataclasses
import functools
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

from service.engine import Answer, DeltaError, Engine, MergedWeights
from service.integrity import ForgedRecord, Signer
from service.metrics import (
    DELTA_BYTES,
    DELTA_CACHE_HITS,
    DELTA_CACHE_MISSES,
    DELTA_REJECTED,
    ENCODE_SECONDS,
    FLIGHTS_SHARED_ACROSS_PROCESSES,
    INNER_LOSS,
    RECORDS_REJECTED,
    REENCODES,
)
from service.single_flight import SingleFlight
from service.store import DeltaStatus, KnowledgeRecord, KnowledgeStore, Quota, StoredDelta, UnreadableRecord
from service.store.protocol import check_quota
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


@dataclass(frozen=True)
class Made:
    """A delta ready to serve: its weights, its stored form (blob + MAC), and whether an inner loop ran here."""

    weights: MergedWeights
    stored: StoredDelta
    ran_inner_loop: bool
    seconds: float = 0.0
    recall: float = math.nan
    final_inner_loss: float = math.nan


_Flight = tuple[Made, KnowledgeRecord]


class KnowledgeService:
    """The only place that decides when an inner loop runs."""

    def __init__(
        self,
        engine: Engine,
        store: KnowledgeStore,
        signer: Signer,
        *,
        default_ttl_s: int,
        weight_cache_bytes: int = 0,
        quota: Quota | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.signer = signer
        self.default_ttl_s = default_ttl_s
        self.quota = quota
        self.weights = WeightCache(weight_cache_bytes)
        self._flights: SingleFlight[tuple[str, str], _Flight] = SingleFlight()
        self._active = 0  # API calls under way (what shutdown waits for before the engine and store close)

    @contextlib.contextmanager
    def _working(self) -> Iterator[None]:
        self._active += 1
        try:
            yield
        finally:
            self._active -= 1

    # --- records: every one read back is checked against its MAC

    async def _record(self, namespace: str, knowledge_id: str) -> KnowledgeRecord | None:
        """The stored record of the set, verified; ForgedRecord (never the attacker's facts) when it fails."""
        with self._refusing_records(knowledge_id):
            record = await self.store.get_knowledge(namespace, knowledge_id)
            self._check_record(namespace, knowledge_id, record)
        return record

    async def _record_and_delta_mac(
        self, namespace: str, knowledge_id: str
    ) -> tuple[KnowledgeRecord | None, str | None]:
        """The verified record (as _record) and the MAC of this model's cached delta, read in one store round trip."""
        with self._refusing_records(knowledge_id):
            record, mac = await self.store.knowledge_and_delta_mac(namespace, knowledge_id)
            self._check_record(namespace, knowledge_id, record)
        return record, mac

    def _check_record(self, namespace: str, knowledge_id: str, record: KnowledgeRecord | None) -> None:
        if record is not None:
            self.signer.check_record(namespace, knowledge_id, record)

    @contextlib.contextmanager
    def _refusing_records(self, knowledge_id: str) -> Iterator[None]:
        try:
            yield
        except UnreadableRecord:  # another record version, or not a record: a 409 that says so
            RECORDS_REJECTED.inc()
            raise
        except ForgedRecord as exc:
            RECORDS_REJECTED.inc()
            log.warning("refused the facts record of %s…: %s", knowledge_id[:12], exc.why)
            raise

    def _new_record(
        self, namespace: str, knowledge_id: str, facts: list[str], made: Made, ttl_s: int
    ) -> KnowledgeRecord:
        record = KnowledgeRecord(
            knowledge_id=knowledge_id,
            facts=facts,
            created=time.time(),
            model=self.engine.model_name,
            fingerprint=self.engine.fingerprint,
            recall=made.recall,
            final_inner_loss=made.final_inner_loss,
            delta_bytes=len(made.stored.blob),
            ttl_s=ttl_s,
            encode_ms=made.seconds * 1000.0,
        )
        return self.signer.sign_record(namespace, record)

    # --- deltas: made here (inner loop, then signed) or loaded from the store (MAC, names, shapes, finite)

    async def _inner_loop(self, namespace: str, knowledge_id: str, facts: list[str]) -> Made:
        encoded = await self.engine.encode(facts)
        ENCODE_SECONDS.observe(encoded.seconds)
        INNER_LOSS.observe(encoded.final_inner_loss)
        DELTA_BYTES.observe(len(encoded.blob))
        engine = self.engine
        mac = await engine.beside(
            self.signer.delta_mac, namespace, knowledge_id, engine.fingerprint, engine.encode_hash, encoded.blob
        )
        return Made(
            encoded.weights,
            StoredDelta(encoded.blob, mac),
            ran_inner_loop=True,
            seconds=encoded.seconds,
            recall=encoded.recall,
            final_inner_loss=encoded.final_inner_loss,
        )

    async def _load(self, namespace: str, knowledge_id: str, stored: StoredDelta) -> MergedWeights | None:
        """Weights of a stored delta that passes every check (then cached), or None when it is refused (counted)."""
        version = self.weights.version
        authenticate = functools.partial(  # the MAC over every byte of the blob
            self.signer.check_delta,
            namespace,
            knowledge_id,
            self.engine.fingerprint,
            self.engine.encode_hash,
            stored.blob,
            stored.mac,
        )
        try:
            weights = await self.engine.load_weights(stored.blob, authenticate)
        except DeltaError as exc:  # refused (forged, other model, bad checksum, wrong shapes, NaN): rebuild it
            DELTA_REJECTED.labels(reason=type(exc).__name__).inc()
            log.warning("refused cached delta %s…: %s: %s", knowledge_id[:12], type(exc).__name__, exc)
            return None
        self.weights.put((namespace, knowledge_id), stored.mac, weights, version)
        return weights

    async def _made_elsewhere(self, namespace: str, knowledge_id: str, refused_mac: str | None) -> Made | None:
        """A delta another process stored while this one waited on the flight lock (None when there is none, or
        it is the one this process already refused)."""
        mac = await self.store.delta_mac(namespace, knowledge_id)
        if mac is None or mac == refused_mac:
            return None
        stored = await self.store.get_delta(namespace, knowledge_id)
        weights = None if stored is None else await self._load(namespace, knowledge_id, stored)
        if stored is None or weights is None:
            return None
        FLIGHTS_SHARED_ACROSS_PROCESSES.inc()
        return Made(weights, stored, ran_inner_loop=False)

    async def _store_delta(self, namespace: str, knowledge_id: str, made: Made, ttl_s: int) -> None:
        await self.store.put_delta(namespace, knowledge_id, made.stored, ttl_s)
        self.weights.put((namespace, knowledge_id), made.stored.mac, made.weights)

    async def _forget_if_deleted(self, namespace: str, knowledge_id: str) -> None:
        # A DELETE that landed while the inner loop ran removed the facts and the old delta, but not the
        # delta written just now: without this, deleted knowledge would stay stored in weight form until
        # its TTL. Checked after the write, so a DELETE landing later removes the delta itself.
        try:
            gone = await self.store.get_knowledge(namespace, knowledge_id) is None
        except UnreadableRecord:
            gone = False  # a record is there (unreadable: refused when it is used, not here)
        if gone:
            self.weights.invalidate((namespace, knowledge_id))
            await self.store.delete_delta(namespace, knowledge_id)

    # --- flights: one per (tenant, id) in this process, and one across processes through the store's lock

    async def _encode_new(self, namespace: str, knowledge_id: str, facts: list[str], ttl_s: int) -> _Flight:
        async with self.store.flight_lock(namespace, knowledge_id):
            record = await self._record(namespace, knowledge_id)
            made = None if record is None else await self._made_elsewhere(namespace, knowledge_id, None)
            if record is not None and made is not None:
                return made, record  # another replica encoded the same facts meanwhile
            made = await self._inner_loop(namespace, knowledge_id, facts)
            if record is None:
                record = self._new_record(namespace, knowledge_id, facts, made, ttl_s)
                # Facts first: a delta must never exist without the facts it can be rebuilt from.
                if not await self.store.put_knowledge(namespace, record, self.quota):
                    record = await self._record(namespace, knowledge_id) or record
            await self._store_delta(namespace, knowledge_id, made, ttl_s)
            await self._forget_if_deleted(namespace, knowledge_id)
        return made, record

    async def _reencode(self, namespace: str, record: KnowledgeRecord, ttl_s: int, refused_mac: str | None) -> _Flight:
        knowledge_id = record.knowledge_id
        async with self.store.flight_lock(namespace, knowledge_id):
            made = await self._made_elsewhere(namespace, knowledge_id, refused_mac)
            if made is not None:
                return made, record  # another replica rebuilt it while this one waited for the lock
            made = await self._inner_loop(namespace, knowledge_id, record.facts)
            await self._store_delta(namespace, knowledge_id, made, ttl_s)
            REENCODES.inc()
            log.info("re-encoded %s (%d facts) in %.0f ms", knowledge_id[:12], record.n_facts, made.seconds * 1e3)
            await self._forget_if_deleted(namespace, knowledge_id)
        return made, record

    async def _keep_facts(
        self, namespace: str, knowledge_id: str, made: Made, record: KnowledgeRecord, ttl_s: int
    ) -> KnowledgeRecord:
        """Make sure the facts of an encode about to be answered 200 are stored, whatever flight it joined.

        The flight may have been an ask's re-encode, which never writes facts, with a DELETE landing before this
        encode arrived (the re-encode then even drops its delta): this encode must still leave the set stored.
        Put-if-absent, so a set that is there (the common case) is left as it is; when the facts were gone they
        are written again, then the delta."""
        fresh = self.signer.sign_record(namespace, dataclasses.replace(record, created=time.time(), mac=""))
        if not await self.store.put_knowledge(namespace, fresh, self.quota):
            return record
        log.info("re-stored the facts of %s… (deleted while its encode was in flight)", knowledge_id[:12])
        await self._store_delta(namespace, knowledge_id, made, ttl_s)
        return fresh

    # --- the API

    async def encode(self, namespace: str, facts: list[str], ttl_s: int | None) -> EncodeOutcome:
        with self._working():
            return await self._encode(namespace, facts, ttl_s)

    async def _encode(self, namespace: str, facts: list[str], ttl_s: int | None) -> EncodeOutcome:
        await self.engine.check_facts(facts)  # FactTooLong before anything is stored or queued
        normalized = self.engine.normalize_facts(facts)
        if not normalized:
            raise EmptyFactSet("no facts left after normalisation")
        knowledge_id = self.engine.knowledge_id(normalized)
        key = (namespace, knowledge_id)

        record = await self._record(namespace, knowledge_id)
        if record is not None:
            if (await self.store.delta_status(namespace, knowledge_id)).cached:
                DELTA_CACHE_HITS.inc()
                if ttl_s is not None:
                    await self.store.touch_delta(namespace, knowledge_id, ttl_s)
                return EncodeOutcome(record, cached=True, encode_ms=0.0)
            DELTA_CACHE_MISSES.inc()
            known, ttl = record, ttl_s or record.ttl_s
            (made, record), leader = await self._flights.run(key, lambda: self._reencode(namespace, known, ttl, None))
        else:
            # A tenant at its quota learns it before an inner loop runs (the store checks again, atomically).
            check_quota(self.quota, await self.store.usage(namespace), sum(len(f.encode()) for f in normalized))
            ttl = ttl_s or self.default_ttl_s
            (made, record), leader = await self._flights.run(
                key, lambda: self._encode_new(namespace, knowledge_id, normalized, ttl)
            )
        record = await self._keep_facts(namespace, knowledge_id, made, record, ttl)
        ran = leader and made.ran_inner_loop
        return EncodeOutcome(record, cached=not ran, encode_ms=made.seconds * 1000.0 if ran else 0.0)

    async def _usable_weights(self, namespace: str, record: KnowledgeRecord, mac: str | None) -> MergedWeights:
        """Weights for the set whose cached delta (read with the record) carries `mac`, None when none is cached."""
        key = (namespace, record.knowledge_id)
        # A hot ask reads the delta's MAC (a few bytes, in the record's round trip), not its blob (~0.7 MB for the
        # shipped model): weights merged from the blob that carries this MAC are already here.
        refused: str | None = None
        if mac is not None:
            weights = self.weights.get(key, mac)
            if weights is not None:
                DELTA_CACHE_HITS.inc()
                return weights
            stored = await self.store.get_delta(namespace, record.knowledge_id)
            if stored is not None:
                weights = await self._load(namespace, record.knowledge_id, stored)
                if weights is not None:
                    DELTA_CACHE_HITS.inc()
                    return weights
                refused = stored.mac
        DELTA_CACHE_MISSES.inc()
        (made, _), _ = await self._flights.run(
            key, lambda: self._reencode(namespace, record, record.ttl_s, refused)
        )
        return made.weights

    async def ask(
        self,
        namespace: str,
        knowledge_id: str,
        questions: list[str],
        *,
        choices: list[str] | None,
        max_new_tokens: int,
    ) -> list[Answer]:
        with self._working():
            plan = await self.engine.plan_ask(questions, choices, max_new_tokens)  # 413/422 before any other work
            record, mac = await self._record_and_delta_mac(namespace, knowledge_id)
            if record is None:
                raise UnknownKnowledge(knowledge_id)
            weights = await self._usable_weights(namespace, record, mac)
            return await self.engine.answer(
                questions, weights, choices=choices, max_new_tokens=max_new_tokens, plan=plan
            )

    async def info(self, namespace: str, knowledge_id: str) -> tuple[KnowledgeRecord, DeltaStatus]:
        with self._working():
            record = await self._record(namespace, knowledge_id)
            if record is None:
                raise UnknownKnowledge(knowledge_id)
            return record, await self.store.delta_status(namespace, knowledge_id)

    async def delete(self, namespace: str, knowledge_id: str) -> None:
        with self._working():
            self.weights.invalidate((namespace, knowledge_id))
            if not await self.store.delete_knowledge(namespace, knowledge_id):
                raise UnknownKnowledge(knowledge_id)

    async def drain(self, timeout_s: float) -> int:
        """Shutdown: wait up to timeout_s for the calls under way and the (re-)encodes in flight to finish and
        store their results, then cancel what is left; returns how many flights were cancelled."""
        deadline = time.monotonic() + timeout_s
        while (self._active or len(self._flights)) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return await self._flights.drain(0)

