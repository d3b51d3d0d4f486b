"""The KnowledgeStore protocol every store implements, and the small types it speaks in."""

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from service.store.record import KnowledgeRecord


class StoreUnavailable(Exception):
    """The store cannot be reached or cannot accept writes right now; the API answers 503."""


@dataclass(frozen=True)
class DeltaStatus:
    """Whether a delta is cached and how long it has left (None = no expiry)."""

    cached: bool
    ttl_s: float | None = None


@dataclass(frozen=True)
class StoredDelta:
    """A delta blob as the store keeps it, with the MAC that binds it to its tenant, id and model."""

    blob: bytes
    mac: str


@dataclass(frozen=True)
class Usage:
    """What a tenant stores durably: knowledge sets and the bytes of their records."""

    sets: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class Quota:
    """Per-tenant bounds on Usage (0 = unbounded)."""

    max_sets: int = 0
    max_bytes: int = 0


class QuotaExceeded(Exception):
    """Storing one more knowledge set would take the tenant past a quota; the API answers 403."""

    def __init__(self, limit_name: str, used: int, adding: int, limit: int, unit: str) -> None:
        super().__init__(
            f"tenant quota exceeded: {used:,} {unit} stored, this set adds {adding:,}, over the limit "
            f"{limit_name}={limit:,}; delete knowledge sets to make room"
        )
        self.limit_name = limit_name
        self.limit = limit


def check_quota(quota: Quota | None, usage: Usage, nbytes: int) -> None:
    """Raise QuotaExceeded if adding one set of `nbytes` to `usage` breaks `quota`."""
    if quota is None:
        return
    if quota.max_sets and usage.sets + 1 > quota.max_sets:
        raise QuotaExceeded("tenant_max_knowledge_sets", usage.sets, 1, quota.max_sets, "knowledge sets")
    if quota.max_bytes and usage.bytes + nbytes > quota.max_bytes:
        raise QuotaExceeded("tenant_max_bytes", usage.bytes, nbytes, quota.max_bytes, "bytes")


@dataclass(frozen=True)
class Eviction:
    """One delta dropped by the store to respect its byte bound or TTL."""

    namespace: str
    knowledge_id: str
    nbytes: int
    reason: str  # "capacity" | "expired" | "too_large"


EvictionHook = Callable[[Eviction], None]


@runtime_checkable
class KnowledgeStore(Protocol):
    """Facts + metadata are durable; delta blobs are a cache that may vanish at any time.

    Deltas are kept per model (fingerprint): replicas serving two model versions during a rolling deploy
    each keep their own, and deleting a knowledge set removes every model's."""

    kind: str

    async def ping(self) -> None: ...

    async def get_knowledge(self, namespace: str, knowledge_id: str) -> KnowledgeRecord | None:
        """The stored record (UnreadableRecord when it cannot be read back), or None."""
        ...

    async def put_knowledge(self, namespace: str, record: KnowledgeRecord, quota: Quota | None = None) -> bool:
        """Store a record unless one exists; True when this call created it. QuotaExceeded (and nothing stored)
        when creating it would take the tenant past `quota`."""
        ...

    async def delete_knowledge(self, namespace: str, knowledge_id: str) -> bool:
        """Drop facts, metadata and every model's delta; True when the knowledge set existed."""
        ...

    async def usage(self, namespace: str) -> Usage: ...

    async def get_delta(self, namespace: str, knowledge_id: str) -> StoredDelta | None: ...

    async def delta_mac(self, namespace: str, knowledge_id: str) -> str | None:
        """The cached delta's MAC alone (a few bytes: what a hot ask compares), or None."""
        ...

    async def knowledge_and_delta_mac(
        self, namespace: str, knowledge_id: str
    ) -> tuple[KnowledgeRecord | None, str | None]:
        """get_knowledge and delta_mac together, in one round trip to a networked store: all a hot ask reads."""
        ...

    async def put_delta(self, namespace: str, knowledge_id: str, delta: StoredDelta, ttl_s: int) -> None: ...

    async def delta_status(self, namespace: str, knowledge_id: str) -> DeltaStatus: ...

    async def touch_delta(self, namespace: str, knowledge_id: str, ttl_s: int) -> bool:
        """Reset a cached delta's TTL; False when there is no delta."""
        ...

    async def delete_delta(self, namespace: str, knowledge_id: str) -> None:
        """Drop this model's cached delta (always safe: it is rebuilt from the facts when needed)."""
        ...

    def flight_lock(self, namespace: str, knowledge_id: str) -> AbstractAsyncContextManager[None]:
        """Held while this process (re-)encodes the set, so other processes sharing the store wait for its
        delta instead of running the same inner loop (a no-op for a single-process store)."""
        ...

    async def close(self) -> None: ...
