"""In-process LRU of verified weights ready to answer with (a delta's factors, or merged weights for a dense
delta), so a hot knowledge id skips fetch + verify + deserialize."""

import contextlib
import hmac
from dataclasses import dataclass

from cachetools import LRUCache

from reckoning_core.reckoner import MergedWeights
from service.metrics import WEIGHT_CACHE_BYTES, WEIGHT_CACHE_HITS, WEIGHT_CACHE_LIMIT_BYTES, WEIGHT_CACHE_MISSES

Key = tuple[str, str]  # (namespace, knowledge id)


@dataclass(frozen=True)
class _Entry:
    mac: str  # the MAC of the stored delta these weights were built from (it covers every byte of the blob)
    weights: MergedWeights

    @property
    def nbytes(self) -> int:
        return len(self.mac) + self.weights.nbytes


class WeightCache:
    """Bounded in bytes; an entry is used only while the store still holds a delta with the MAC of the blob it
    was built from, so a delta deleted or replaced in the store (by a re-encode, here or on another replica) is
    noticed on the next ask, from a few bytes read instead of the blob. What a hit skips is fetching the blob,
    its MAC, the deserialization and the merge. A blob damaged under an intact MAC is caught wherever it is
    loaded (another replica, or this one once the entry is gone); the weights served here came from the
    verified original.
    """

    def __init__(self, max_bytes: int) -> None:
        self._entries: LRUCache[Key, _Entry] = LRUCache(maxsize=max_bytes, getsizeof=lambda e: e.nbytes)
        WEIGHT_CACHE_LIMIT_BYTES.set(max_bytes)
        # Bumped by every invalidate(): weights built across one (a DELETE landing while a blob was being
        # loaded) are not cached, as they could never be served and would only hold memory.
        self.version = 0

    @property
    def max_bytes(self) -> int:
        return int(self._entries.maxsize)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return int(self._entries.currsize)

    def get(self, key: Key, mac: str) -> MergedWeights | None:
        entry = self._entries.get(key)
        if entry is not None and hmac.compare_digest(entry.mac, mac):
            WEIGHT_CACHE_HITS.inc()
            return entry.weights
        if entry is not None:  # the store's delta changed behind us: this entry can never be used again
            self.drop(key)
        WEIGHT_CACHE_MISSES.inc()
        return None

    def put(self, key: Key, mac: str, weights: MergedWeights, version: int | None = None) -> None:
        """Cache weights built from the delta with this MAC; with `version` (read before building them), only if
        nothing was invalidated meanwhile."""
        if version is not None and version != self.version:
            return
        self._entries.pop(key, None)
        with contextlib.suppress(ValueError):  # larger than the whole bound (or the cache is off: 0 bytes)
            self._entries[key] = _Entry(mac, weights)
        WEIGHT_CACHE_BYTES.set(self.nbytes)

    def drop(self, key: Key) -> None:
        if self._entries.pop(key, None) is not None:
            WEIGHT_CACHE_BYTES.set(self.nbytes)

    def invalidate(self, key: Key) -> None:
        """The knowledge is gone: drop its entry, and refuse weights for anything built before now."""
        self.version += 1
        self.drop(key)
