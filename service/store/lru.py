"""DeltaLRU: the embedded store's delta cache, bounded in bytes with a TTL per entry (cachetools' TLRUCache)."""

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from cachetools import TLRUCache

from service.store.protocol import Eviction, EvictionHook, StoredDelta

Key = tuple[str, str]  # (namespace, knowledge id)


@dataclass(frozen=True)
class _Entry:
    delta: StoredDelta
    expires_at: float  # on the LRU's clock

    @property
    def nbytes(self) -> int:
        return len(self.delta.blob)


class _ReportingCache(TLRUCache):  # type: ignore[misc]  # cachetools ships no type hints
    """TLRUCache that tells `report` about every entry it drops by itself (to make room, or expired)."""

    def __init__(self, max_bytes: int, clock: Callable[[], float], report: Callable[[Key, _Entry, str], None]) -> None:
        super().__init__(maxsize=max_bytes, ttu=lambda _k, e, _now: e.expires_at, timer=clock,
                         getsizeof=lambda e: e.nbytes)
        self._report = report

    def popitem(self) -> tuple[Key, _Entry]:
        key, entry = super().popitem()
        self._report(key, entry, "capacity")
        return key, entry

    def expire(self, time: float | None = None) -> Any:
        expired = super().expire(time)
        for key, entry in expired:
            self._report(key, entry, "expired")
        return expired


class DeltaLRU:
    """Deltas by (namespace, id): least recently used out first once `max_bytes` is reached, each entry
    gone after its TTL; every eviction goes through one hook."""

    def __init__(
        self, max_bytes: int, on_evict: EvictionHook | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.on_evict = on_evict
        self.clock = clock
        self._cache = _ReportingCache(max_bytes, clock, self._evicted)

    def _evicted(self, key: Key, entry: _Entry, reason: str) -> None:
        if self.on_evict is not None:
            self.on_evict(Eviction(key[0], key[1], entry.nbytes, reason))

    def _live(self, key: Key) -> _Entry | None:
        self._cache.expire()  # expired entries are dropped (and reported) before anything is read
        entry: _Entry | None = self._cache.get(key)
        return entry

    def __len__(self) -> int:
        self._cache.expire()
        return len(self._cache)

    @property
    def nbytes(self) -> int:
        return int(self._cache.currsize)

    def get(self, key: Key) -> StoredDelta | None:
        entry = self._live(key)
        return None if entry is None else entry.delta

    def put(self, key: Key, delta: StoredDelta, ttl_s: float) -> None:
        self.discard(key)  # a refused replacement must not leave the old blob behind
        try:
            self._cache[key] = _Entry(delta, self.clock() + ttl_s)
        except ValueError:  # larger than the whole bound
            self._evicted(key, _Entry(delta, 0.0), "too_large")

    def ttl(self, key: Key) -> float | None:
        entry = self._live(key)
        return None if entry is None else entry.expires_at - self.clock()

    def touch(self, key: Key, ttl_s: float) -> bool:
        entry = self._live(key)
        if entry is None:
            return False
        self._cache[key] = replace(entry, expires_at=self.clock() + ttl_s)
        return True

    def discard(self, key: Key) -> None:
        self._cache.expire()
        self._cache.pop(key, None)
