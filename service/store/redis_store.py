"""RedisStore: facts as plain keys (never evicted under volatile-lru), deltas as per-model hashes with a TTL.

Key layout (`prefix` is RECKONING_KEY_PREFIX, `ns` the tenant):
  {prefix}:{ns}:facts:{id}           the signed facts record (JSON), no TTL
  {prefix}:{ns}:delta:{model}:{id}   hash {mac, blob}: this model's delta, TTL (evictable)
  {prefix}:{ns}:deltas:{id}          set of the models holding a delta of the set (so DELETE removes them all)
  {prefix}:{ns}:usage                hash {sets, bytes}: the tenant's quota counters, changed with the facts
  {prefix}:{ns}:lock:{model}:{id}    the cross-replica single-flight lock of a (re-)encode
`model` is the first 16 hex digits of the model fingerprint: replicas of two model versions keep their own deltas.
"""

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Literal, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.lock import Lock
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import (
    ExecAbortError,
    LockError,
    LockNotOwnedError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.store.protocol import DeltaStatus, Quota, QuotaExceeded, StoredDelta, StoreUnavailable, Usage
from service.store.record import KnowledgeRecord

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

MODEL_KEY_CHARS = 16


def redis_key(prefix: str, namespace: str, kind: Literal["facts", "deltas", "usage"], knowledge_id: str = "") -> str:
    """The one spelling of a store key that is not per model (`*` in any part makes a SCAN pattern)."""
    return f"{prefix}:{namespace}:{kind}" + (f":{knowledge_id}" if knowledge_id else "")


def model_key(prefix: str, namespace: str, kind: Literal["delta", "lock"], model: str, knowledge_id: str) -> str:
    """The spelling of a per-model key: a delta, or the lock of its (re-)encode."""
    return f"{prefix}:{namespace}:{kind}:{model[:MODEL_KEY_CHARS]}:{knowledge_id}"


def _refusal(exc: ResponseError) -> str | None:
    """What a Redis error reply means for a client, when it is Redis refusing work (not our bug)."""
    text = str(exc)
    if isinstance(exc, OutOfMemoryError) or "OOM" in text.split(" ", 1)[0] or "OOM command not allowed" in text:
        return "redis is out of memory (maxmemory reached with nothing it may evict)"
    if text.startswith("MISCONF") or "MISCONF" in text:
        return "redis refuses writes: it cannot persist to disk (MISCONF)"
    if isinstance(exc, NoPermissionError) or text.startswith("NOPERM") or "NOPERM" in text:
        return "redis denied a command to this service's user (NOPERM: check its ACL)"
    if isinstance(exc, ReadOnlyError) or text.startswith("READONLY"):
        return "redis is read-only (a replica)"
    if isinstance(exc, ExecAbortError) or text.startswith("EXECABORT"):
        return "redis aborted a transaction"
    return None


@contextlib.asynccontextmanager
async def _translated(operation: str, bound_s: float) -> AsyncIterator[None]:
    """Turn every way Redis can be unreachable or refuse work into StoreUnavailable, within `bound_s` seconds."""
    try:
        # Socket timeouts bound each I/O; this bounds the whole call (redis-py's retries included).
        async with asyncio.timeout(bound_s):
            yield
    except (RedisConnectionError, RedisTimeoutError, TimeoutError, OSError) as exc:
        # BusyLoadingError (AOF replay after a restart) is a ConnectionError too.
        # the message reaches /readyz; the cause (with addresses) only the log, through __cause__
        raise StoreUnavailable(f"redis unreachable in {operation}: {type(exc).__name__}") from exc
    except ResponseError as exc:
        # redis-py >= 5 raises OutOfMemoryError for OOM, whose text no longer starts with "OOM"; MISCONF and
        # NOPERM are plain error replies. All of them are Redis refusing work: a 503, never a 500.
        reason = _refusal(exc) or f"redis refused {operation}: {str(exc).split(' ', 1)[0]}"
        log.warning("redis refused %s: %s", operation, exc)
        raise StoreUnavailable(reason) from exc
    except RedisError as exc:
        log.warning("redis error: %r", exc)
        raise StoreUnavailable(f"redis error in {operation}: {type(exc).__name__}") from exc


def _redis_errors(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Store methods raise StoreUnavailable, never a Redis error, and within op_timeout_s."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        self = args[0]
        assert isinstance(self, RedisStore)
        async with _translated(fn.__name__, self.op_timeout_s):
            return await fn(*args, **kwargs)
        raise AssertionError("unreachable")  # for mypy: the context manager may swallow nothing

    return wrapper


# Create the facts record unless it exists, within the tenant's quota, and count it; atomic (one script).
# ARGV: record JSON, max sets (0 = none), max bytes (0 = none). Returns 1 created, 0 existed, -1/-2 quota (sets/bytes).
_PUT_KNOWLEDGE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 0, 0} end
local n = string.len(ARGV[1])
local sets = tonumber(redis.call('HGET', KEYS[2], 'sets') or '0')
local bytes = tonumber(redis.call('HGET', KEYS[2], 'bytes') or '0')
if tonumber(ARGV[2]) > 0 and sets + 1 > tonumber(ARGV[2]) then return {-1, sets, bytes} end
if tonumber(ARGV[3]) > 0 and bytes + n > tonumber(ARGV[3]) then return {-2, sets, bytes} end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HINCRBY', KEYS[2], 'sets', 1)
redis.call('HINCRBY', KEYS[2], 'bytes', n)
return {1, sets + 1, bytes + n}
"""

# Delete the facts record, every model's delta and the model index, and uncount the record; atomic.
# KEYS: facts, usage, model index. ARGV: delta key prefix "{prefix}:{ns}:delta:", id, this server's model key.
# allow-oom: a full Redis must still let tenants delete (deleting is how they free memory).
_DELETE_KNOWLEDGE = """#!lua flags=allow-oom
local n = redis.call('STRLEN', KEYS[1])
local existed = redis.call('DEL', KEYS[1])
for _, model in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  redis.call('DEL', ARGV[1] .. model .. ':' .. ARGV[2])
end
redis.call('DEL', ARGV[1] .. ARGV[3] .. ':' .. ARGV[2], ARGV[1] .. ARGV[2], KEYS[3])
if existed == 1 then
  if redis.call('HINCRBY', KEYS[2], 'sets', -1) < 0 then redis.call('HSET', KEYS[2], 'sets', 0) end
  if redis.call('HINCRBY', KEYS[2], 'bytes', -n) < 0 then redis.call('HSET', KEYS[2], 'bytes', 0) end
end
return existed
"""


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value  # str only if someone set decode_responses


class RedisStore:
    """Facts as plain keys (no TTL, never evicted under volatile-lru), deltas as per-model hashes with a TTL."""

    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        model: str,
        timeout_s: float = 1.0,
        prefix: str = "reckoning",
        lock_ttl_s: float = 5.0,
        lock_wait_s: float = 60.0,
    ) -> None:
        self.prefix = prefix
        self.model = model[:MODEL_KEY_CHARS]
        self.lock_ttl_s = lock_ttl_s
        self.lock_wait_s = lock_wait_s
        self.op_timeout_s = timeout_s * 4
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            # redis-py's asyncio Retry (the sync redis.retry.Retry is never awaited by the asyncio client, so it
            # retried nothing): on ConnectionError/TimeoutError the connection is dropped and the command re-sent on
            # a fresh one, which recovers the pool's stale sockets after a Redis restart. Three tries with 0.05,
            # 0.1 and 0.2 s of backoff ride out a short blip and still answer 503 about 0.35 s into an outage.
            retry=Retry(ExponentialBackoff(cap=0.25, base=0.025), retries=3),
            health_check_interval=15,
            decode_responses=False,
        )
        self._put_knowledge = self._redis.register_script(_PUT_KNOWLEDGE)
        self._delete_knowledge = self._redis.register_script(_DELETE_KNOWLEDGE)

    def facts_key(self, namespace: str, knowledge_id: str) -> str:
        return redis_key(self.prefix, namespace, "facts", knowledge_id)

    def delta_key(self, namespace: str, knowledge_id: str) -> str:
        return model_key(self.prefix, namespace, "delta", self.model, knowledge_id)

    def _index_key(self, namespace: str, knowledge_id: str) -> str:
        return redis_key(self.prefix, namespace, "deltas", knowledge_id)

    def _usage_key(self, namespace: str) -> str:
        return redis_key(self.prefix, namespace, "usage")

    @_redis_errors
    async def ping(self) -> None:
        await self._redis.ping()

    @_redis_errors
    async def get_knowledge(self, namespace: str, knowledge_id: str) -> KnowledgeRecord | None:
        raw = await self._redis.get(self.facts_key(namespace, knowledge_id))
        return None if raw is None else KnowledgeRecord.from_json(raw)

    @_redis_errors
    async def put_knowledge(self, namespace: str, record: KnowledgeRecord, quota: Quota | None = None) -> bool:
        # NX keeps the first record (and its `created`) when two replicas encode the same set.
        quota = quota or Quota()
        raw = record.to_json().encode("utf-8")
        keys = [self.facts_key(namespace, record.knowledge_id), self._usage_key(namespace)]
        outcome, sets, nbytes = await self._put_knowledge(keys=keys, args=[raw, quota.max_sets, quota.max_bytes])
        if outcome == -1:
            raise QuotaExceeded("tenant_max_knowledge_sets", int(sets), 1, quota.max_sets, "knowledge sets")
        if outcome == -2:
            raise QuotaExceeded("tenant_max_bytes", int(nbytes), len(raw), quota.max_bytes, "bytes")
        return bool(outcome == 1)

    @_redis_errors
    async def delete_knowledge(self, namespace: str, knowledge_id: str) -> bool:
        keys = [
            self.facts_key(namespace, knowledge_id),
            self._usage_key(namespace),
            self._index_key(namespace, knowledge_id),
        ]
        delta_prefix = f"{self.prefix}:{namespace}:delta:"
        existed = await self._delete_knowledge(keys=keys, args=[delta_prefix, knowledge_id, self.model])
        return bool(existed)

    @_redis_errors
    async def usage(self, namespace: str) -> Usage:
        sets, nbytes = await self._redis.hmget(self._usage_key(namespace), ["sets", "bytes"])
        return Usage(int(sets or 0), int(nbytes or 0))

    @_redis_errors
    async def get_delta(self, namespace: str, knowledge_id: str) -> StoredDelta | None:
        mac, blob = await self._redis.hmget(self.delta_key(namespace, knowledge_id), ["mac", "blob"])
        if blob is None:
            return None
        return StoredDelta(_bytes(blob), _bytes(mac or b"").decode("ascii", "replace"))

    @_redis_errors
    async def delta_mac(self, namespace: str, knowledge_id: str) -> str | None:
        mac = await self._redis.hget(self.delta_key(namespace, knowledge_id), "mac")
        return None if mac is None else _bytes(mac).decode("ascii", "replace")

    @_redis_errors
    async def knowledge_and_delta_mac(
        self, namespace: str, knowledge_id: str
    ) -> tuple[KnowledgeRecord | None, str | None]:
        # One MULTI/EXEC: both reads in one round trip (a hot ask's only one), from the same moment.
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self.facts_key(namespace, knowledge_id))
            pipe.hget(self.delta_key(namespace, knowledge_id), "mac")
            raw, mac = await pipe.execute()
        record = None if raw is None else KnowledgeRecord.from_json(raw)
        return record, None if mac is None else _bytes(mac).decode("ascii", "replace")

    @_redis_errors
    async def put_delta(self, namespace: str, knowledge_id: str, delta: StoredDelta, ttl_s: int) -> None:
        key, index = self.delta_key(namespace, knowledge_id), self._index_key(namespace, knowledge_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)  # a hash written over an older one keeps none of its fields
            pipe.hset(key, mapping={"mac": delta.mac, "blob": delta.blob})
            pipe.expire(key, ttl_s)
            pipe.sadd(index, self.model)
            # The index lives as long as the longest-lived delta it lists (NX: first TTL, GT: only ever longer).
            pipe.expire(index, ttl_s, nx=True)
            pipe.expire(index, ttl_s, gt=True)
            await pipe.execute()

    @_redis_errors
    async def delta_status(self, namespace: str, knowledge_id: str) -> DeltaStatus:
        pttl = int(await self._redis.pttl(self.delta_key(namespace, knowledge_id)))
        if pttl == -2:
            return DeltaStatus(cached=False)
        return DeltaStatus(cached=True, ttl_s=None if pttl == -1 else pttl / 1000.0)

    @_redis_errors
    async def touch_delta(self, namespace: str, knowledge_id: str, ttl_s: int) -> bool:
        touched = bool(await self._redis.expire(self.delta_key(namespace, knowledge_id), ttl_s))
        if touched:
            await self._redis.expire(self._index_key(namespace, knowledge_id), ttl_s, gt=True)
        return touched

    @_redis_errors
    async def delete_delta(self, namespace: str, knowledge_id: str) -> None:
        await self._redis.delete(self.delta_key(namespace, knowledge_id))

    @contextlib.asynccontextmanager
    async def flight_lock(self, namespace: str, knowledge_id: str) -> AsyncIterator[None]:
        """redis-py's Lock (SET NX PX with a random token, released by a script that checks the token), held as
        a lease: its TTL is short (lock_ttl_s) and the holder renews it every third of that while its encode runs.

        So a lock whose holder can no longer release it frees within one lease: a replica killed mid-encode, or a
        release that failed because Redis was down (the lock then comes back from the AOF when Redis restarts).
        A waiter gives up after lock_wait_s and runs the encode itself. The lock saves work and is never needed
        for correctness: every write it guards is idempotent."""
        name = model_key(self.prefix, namespace, "lock", self.model, knowledge_id)
        lock = self._redis.lock(name, timeout=self.lock_ttl_s, sleep=0.05, blocking_timeout=self.lock_wait_s)
        async with _translated("flight_lock", self.lock_wait_s + self.op_timeout_s):
            acquired = bool(await lock.acquire())
        if not acquired:
            log.warning(
                "waited %.0f s for another replica's encode of %s…; encoding here", self.lock_wait_s, knowledge_id[:12]
            )
        renewal = asyncio.create_task(self._renew(lock)) if acquired else None
        try:
            yield
        finally:
            if renewal is not None:
                renewal.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewal
            if acquired:
                with contextlib.suppress(LockError, RedisError, OSError):  # expired or Redis gone: nothing to free
                    await lock.release()

    async def _renew(self, lock: Lock) -> None:
        """Reset the lease's TTL every third of it until cancelled; a beat that finds Redis away tries again next
        time, and a lease that expired and went to another replica is let go."""
        while True:
            await asyncio.sleep(self.lock_ttl_s / 3)
            try:
                async with asyncio.timeout(self.op_timeout_s):
                    await lock.reacquire()
            except LockNotOwnedError:
                return
            except (RedisError, OSError, TimeoutError):
                continue

    async def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):  # closing a dead connection must not fail shutdown
            await self._redis.aclose()
