"""Where knowledge lives: the KnowledgeStore protocol, RedisStore and the embedded SQLite + LRU store."""

import asyncio
import contextlib
import functools
import json
import logging
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar, runtime_checkable

import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


class StoreUnavailable(Exception):
    """The store cannot be reached or cannot accept writes right now; the API answers 503."""


@dataclass(frozen=True)
class KnowledgeRecord:
    """The durable part of a knowledge set: its facts (the source of truth) and metadata."""

    knowledge_id: str
    facts: list[str]
    created: float  # unix seconds
    model: str
    fingerprint: str
    recall: float
    final_inner_loss: float
    delta_bytes: int
    ttl_s: int  # TTL used for the cached delta, reused when it is re-encoded
    encode_ms: float

    @property
    def n_facts(self) -> int:
        return len(self.facts)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> "KnowledgeRecord":
        return cls(**json.loads(raw))


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


# ----------------------------------------------------------------------------- Redis


def _redis_errors(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn every way Redis can be unreachable into StoreUnavailable, with a hard time bound."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        self = args[0]
        assert isinstance(self, RedisStore)
        try:
            # Socket timeouts bound each I/O; this bounds the whole call (retries included).
            async with asyncio.timeout(self.op_timeout_s):
                try:
                    return await fn(*args, **kwargs)
                except RedisConnectionError:
                    # After a Redis restart a pooled connection can fail even after redis-py's own retry on
                    # it ("Connection closed by server", seen in the SIGKILL test); once more through the pool.
                    # Every operation here can be repeated safely, and a refused connection fails again at once.
                    return await fn(*args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError, TimeoutError, OSError) as exc:
            # BusyLoadingError (AOF replay after a restart) is a ConnectionError too.
            # the message reaches /readyz; the cause (with addresses) only the log, through __cause__
            raise StoreUnavailable(f"redis unreachable in {fn.__name__}: {type(exc).__name__}") from exc
        except ReadOnlyError as exc:
            raise StoreUnavailable("redis is read-only") from exc
        except ResponseError as exc:
            if str(exc).startswith("OOM"):
                raise StoreUnavailable("redis is out of memory") from exc
            raise
        except RedisError as exc:
            log.warning("redis error: %r", exc)
            raise StoreUnavailable(f"redis error: {type(exc).__name__}") from exc

    return wrapper


class RedisStore:
    """Facts as plain keys (no TTL, never evicted under volatile-lru), deltas as keys with a TTL."""

    kind = "redis"

    def __init__(self, url: str, *, timeout_s: float = 1.0, prefix: str = "reckoning") -> None:
        self.prefix = prefix
        # One retry on a fresh connection (plus _redis_errors' one pass through the pool) hides stale pooled
        # sockets after a Redis restart; more retries would only make an outage slower to report.
        self.op_timeout_s = timeout_s * 4
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), retries=1),
            health_check_interval=15,
            decode_responses=False,
        )

    def facts_key(self, namespace: str, knowledge_id: str) -> str:
        return f"{self.prefix}:{namespace}:facts:{knowledge_id}"

    def delta_key(self, namespace: str, knowledge_id: str) -> str:
        return f"{self.prefix}:{namespace}:delta:{knowledge_id}"

    @_redis_errors
    async def ping(self) -> None:
        await self._redis.ping()

    @_redis_errors
    async def get_knowledge(self, namespace: str, knowledge_id: str) -> KnowledgeRecord | None:
        raw = await self._redis.get(self.facts_key(namespace, knowledge_id))
        return None if raw is None else KnowledgeRecord.from_json(raw)

    @_redis_errors
    async def put_knowledge(self, namespace: str, record: KnowledgeRecord) -> bool:
        # NX keeps the first record (and its `created`) when two replicas encode the same set.
        created = await self._redis.set(self.facts_key(namespace, record.knowledge_id), record.to_json(), nx=True)
        return bool(created)

    @_redis_errors
    async def delete_knowledge(self, namespace: str, knowledge_id: str) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.facts_key(namespace, knowledge_id))
            pipe.delete(self.delta_key(namespace, knowledge_id))
            facts_deleted, _ = await pipe.execute()
        return bool(facts_deleted)

    @_redis_errors
    async def get_delta(self, namespace: str, knowledge_id: str) -> bytes | None:
        raw = await self._redis.get(self.delta_key(namespace, knowledge_id))
        return raw.encode() if isinstance(raw, str) else raw  # str only if someone set decode_responses

    @_redis_errors
    async def put_delta(self, namespace: str, knowledge_id: str, blob: bytes, ttl_s: int) -> None:
        await self._redis.set(self.delta_key(namespace, knowledge_id), blob, ex=ttl_s)

    @_redis_errors
    async def delta_status(self, namespace: str, knowledge_id: str) -> DeltaStatus:
        pttl = int(await self._redis.pttl(self.delta_key(namespace, knowledge_id)))
        if pttl == -2:
            return DeltaStatus(cached=False)
        return DeltaStatus(cached=True, ttl_s=None if pttl == -1 else pttl / 1000.0)

    @_redis_errors
    async def touch_delta(self, namespace: str, knowledge_id: str, ttl_s: int) -> bool:
        return bool(await self._redis.expire(self.delta_key(namespace, knowledge_id), ttl_s))

    @_redis_errors
    async def delete_delta(self, namespace: str, knowledge_id: str) -> None:
        await self._redis.delete(self.delta_key(namespace, knowledge_id))

    async def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):  # closing a dead connection must not fail shutdown
            await self._redis.aclose()


# ----------------------------------------------------------------------------- embedded


@dataclass
class _LruEntry:
    blob: bytes
    expires_at: float  # time.monotonic()


@dataclass
class DeltaLRU:
    """A byte-bounded, TTL-aware LRU of delta blobs; evictions go through one hook."""

    max_bytes: int
    on_evict: EvictionHook | None = None
    clock: Callable[[], float] = time.monotonic
    _entries: "OrderedDict[tuple[str, str], _LruEntry]" = field(default_factory=OrderedDict)
    nbytes: int = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, key: tuple[str, str], reason: str | None) -> None:
        entry = self._entries.pop(key)
        self.nbytes -= len(entry.blob)
        if reason is not None and self.on_evict is not None:
            self.on_evict(Eviction(key[0], key[1], len(entry.blob), reason))

    def _live(self, key: tuple[str, str]) -> _LruEntry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at <= self.clock():
            self._drop(key, "expired")
            return None
        return entry

    def get(self, key: tuple[str, str]) -> bytes | None:
        entry = self._live(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry.blob

    def put(self, key: tuple[str, str], blob: bytes, ttl_s: float) -> None:
        if key in self._entries:
            self._drop(key, None)
        if len(blob) > self.max_bytes:
            if self.on_evict is not None:
                self.on_evict(Eviction(key[0], key[1], len(blob), "too_large"))
            return
        while self.nbytes + len(blob) > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest, "capacity")
        self._entries[key] = _LruEntry(blob, self.clock() + ttl_s)
        self.nbytes += len(blob)

    def ttl(self, key: tuple[str, str]) -> float | None:
        entry = self._live(key)
        return None if entry is None else entry.expires_at - self.clock()

    def touch(self, key: tuple[str, str], ttl_s: float) -> bool:
        entry = self._live(key)
        if entry is None:
            return False
        entry.expires_at = self.clock() + ttl_s
        return True

    def discard(self, key: tuple[str, str]) -> None:
        if key in self._entries:
            self._drop(key, None)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS knowledge (
    namespace    TEXT NOT NULL,
    knowledge_id TEXT NOT NULL,
    record       TEXT NOT NULL,
    PRIMARY KEY (namespace, knowledge_id)
)
"""


class EmbeddedStore:
    """SQLite (stdlib) for facts and metadata, an in-memory DeltaLRU for deltas: no server needed."""

    kind = "embedded"

    def __init__(self, path: Path, *, max_delta_bytes: int, on_evict: EvictionHook | None = None) -> None:
        self.path = Path(path)
        self.deltas = DeltaLRU(max_delta_bytes, on_evict)
        # One thread owns the connection: sqlite3 objects are not meant to hop threads,
        # and file I/O must stay off the event loop.
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reckoning-sqlite")
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None)  # autocommit: each write is durable
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(_SCHEMA)
            self._db = db
        return self._db

    async def _sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]] | int:
        def run() -> list[tuple[Any, ...]] | int:
            try:
                cur = self._connect().execute(query, params)
                return cur.fetchall() if query.lstrip().upper().startswith("SELECT") else cur.rowcount
            except sqlite3.OperationalError as exc:  # disk full, locked, unreadable file
                raise StoreUnavailable(f"sqlite: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._io, run)

    async def ping(self) -> None:
        await self._sql("SELECT 1")

    async def get_knowledge(self, namespace: str, knowledge_id: str) -> KnowledgeRecord | None:
        rows = await self._sql(
            "SELECT record FROM knowledge WHERE namespace = ? AND knowledge_id = ?", (namespace, knowledge_id)
        )
        assert isinstance(rows, list)
        return KnowledgeRecord.from_json(rows[0][0]) if rows else None

    async def put_knowledge(self, namespace: str, record: KnowledgeRecord) -> bool:
        changed = await self._sql(
            "INSERT OR IGNORE INTO knowledge (namespace, knowledge_id, record) VALUES (?, ?, ?)",
            (namespace, record.knowledge_id, record.to_json()),
        )
        return changed == 1

    async def delete_knowledge(self, namespace: str, knowledge_id: str) -> bool:
        self.deltas.discard((namespace, knowledge_id))
        changed = await self._sql(
            "DELETE FROM knowledge WHERE namespace = ? AND knowledge_id = ?", (namespace, knowledge_id)
        )
        return changed == 1

    async def get_delta(self, namespace: str, knowledge_id: str) -> bytes | None:
        return self.deltas.get((namespace, knowledge_id))

    async def put_delta(self, namespace: str, knowledge_id: str, blob: bytes, ttl_s: int) -> None:
        self.deltas.put((namespace, knowledge_id), blob, ttl_s)

    async def delta_status(self, namespace: str, knowledge_id: str) -> DeltaStatus:
        ttl = self.deltas.ttl((namespace, knowledge_id))
        return DeltaStatus(cached=False) if ttl is None else DeltaStatus(cached=True, ttl_s=ttl)

    async def touch_delta(self, namespace: str, knowledge_id: str, ttl_s: int) -> bool:
        return self.deltas.touch((namespace, knowledge_id), ttl_s)

    async def delete_delta(self, namespace: str, knowledge_id: str) -> None:
        self.deltas.discard((namespace, knowledge_id))

    async def close(self) -> None:
        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._io, shut)
        self._io.shutdown(wait=True)


def build_store(
    *,
    redis_url: str | None,
    sqlite_path: Path,
    delta_cache_bytes: int,
    timeout_s: float,
    prefix: str,
    on_evict: EvictionHook | None = None,
) -> KnowledgeStore:
    """Redis when a URL is configured, else the embedded store (so `reckoning serve` works bare)."""
    if redis_url:
        return RedisStore(redis_url, timeout_s=timeout_s, prefix=prefix)
    return EmbeddedStore(sqlite_path, max_delta_bytes=delta_cache_bytes, on_evict=on_evict)
