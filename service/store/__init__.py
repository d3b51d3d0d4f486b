"""Where knowledge lives: the KnowledgeStore protocol, its Redis and embedded (SQLite + LRU) stores, build_store."""

from pathlib import Path

from service.store.embedded import EmbeddedStore
from service.store.protocol import (
    DeltaStatus,
    Eviction,
    EvictionHook,
    KnowledgeStore,
    Quota,
    QuotaExceeded,
    StoredDelta,
    StoreUnavailable,
    Usage,
)
from service.store.record import KnowledgeRecord, UnreadableRecord
from service.store.redis_store import RedisStore

__all__ = [
    "DeltaStatus",
    "EmbeddedStore",
    "Eviction",
    "EvictionHook",
    "KnowledgeRecord",
    "KnowledgeStore",
    "Quota",
    "QuotaExceeded",
    "RedisStore",
    "StoreUnavailable",
    "StoredDelta",
    "UnreadableRecord",
    "Usage",
    "build_store",
]


def build_store(
    *,
    redis_url: str | None,
    sqlite_path: Path,
    delta_cache_bytes: int,
    timeout_s: float,
    prefix: str,
    model: str,
    lock_ttl_s: float = 60.0,
    on_evict: EvictionHook | None = None,
) -> KnowledgeStore:
    """Redis when a URL is configured, else the embedded store (so `reckoning serve` works bare).

    `model` (the model fingerprint) keys the deltas, so replicas of two model versions keep their own."""
    if redis_url:
        return RedisStore(redis_url, model=model, timeout_s=timeout_s, prefix=prefix, lock_ttl_s=lock_ttl_s)
    return EmbeddedStore(sqlite_path, max_delta_bytes=delta_cache_bytes, on_evict=on_evict)
