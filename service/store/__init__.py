"""Where knowledge lives: the KnowledgeStore protocol, its Redis and embedded (SQLite + LRU) stores, build_store."""

from service.settings import Settings
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


def build_store(settings: Settings, *, model: str, on_evict: EvictionHook | None = None) -> KnowledgeStore:
    """The store the settings name: Redis when a URL is configured, else the embedded store (so `reckoning serve`
    works bare).

    `model` (the model fingerprint) keys the deltas, so replicas of two model versions keep their own."""
    if settings.redis_url:
        return RedisStore(
            settings.redis_url,
            model=model,
            timeout_s=settings.store_timeout_s,
            prefix=settings.key_prefix,
            lock_ttl_s=settings.flight_lock_ttl_s,
            lock_wait_s=settings.flight_lock_wait_s,
        )
    return EmbeddedStore(settings.sqlite_path, max_delta_bytes=settings.delta_cache_bytes, on_evict=on_evict)
