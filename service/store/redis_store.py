"""RedisStore: facts as plain keys (never evicted under volatile-lru), deltas as keys with a TTL."""

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.store.protocol import DeltaStatus, StoreUnavailable
from service.store.record import KnowledgeRecord

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


def redis_key(prefix: str, namespace: str, kind: Literal["facts", "delta"], knowledge_id: str) -> str:
    """The one spelling of a store key (`*` in any part makes a SCAN pattern)."""
    return f"{prefix}:{namespace}:{kind}:{knowledge_id}"


def _redis_errors(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn every way Redis can be unreachable into StoreUnavailable, with a hard time bound."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        self = args[0]
        assert isinstance(self, RedisStore)
        try:
            # Socket timeouts bound each I/O; this bounds the whole call (redis-py's retries included).
            async with asyncio.timeout(self.op_timeout_s):
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

    def facts_key(self, namespace: str, knowledge_id: str) -> str:
        return redis_key(self.prefix, namespace, "facts", knowledge_id)

    def delta_key(self, namespace: str, knowledge_id: str) -> str:
        return redis_key(self.prefix, namespace, "delta", knowledge_id)

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


