"""The KnowledgeStore protocol every store implements, and the small types it speaks in."""

from collections.abc import Callable
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
class Eviction:
    """One delta dropped by the store to respect its byte bound or TTL."""

    namespace: str
    knowledge_id: str
    nbytes: int
    reason: str  # "capacity" | "expired" | "too_large"


EvictionHook = Callable[[Eviction], None]


@runtime_checkable
class KnowledgeStore(Protocol):
    """Facts + metadata are durable; delta blobs are a cache that may vanish at any time."""

    kind: str

    async def ping(self) -> None: ...

    async def get_knowledge(self, namespace: str, knowledge_id: str) -> KnowledgeRecord | None: ...

    async def put_knowledge(self, namespace: str, record: KnowledgeRecord) -> bool:
        """Store a record unless one exists; True when this call created it."""
        ...

    async def delete_knowledge(self, namespace: str, knowledge_id: str) -> bool:
        """Drop facts, metadata and delta; True when the knowledge set existed."""
        ...

    async def get_delta(self, namespace: str, knowledge_id: str) -> bytes | None: ...

    async def put_delta(self, namespace: str, knowledge_id: str, blob: bytes, ttl_s: int) -> None: ...

    async def delta_status(self, namespace: str, knowledge_id: str) -> DeltaStatus: ...

    async def touch_delta(self, namespace: str, knowledge_id: str, ttl_s: int) -> bool:
        """Reset a cached delta's TTL; False when there is no delta."""
        ...

    async def delete_delta(self, namespace: str, knowledge_id: str) -> None:
        """Drop a cached delta (always safe: it is rebuilt from the facts when needed)."""
        ...

    async def close(self) -> None: ...
