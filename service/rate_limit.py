"""Per-tenant rate limits with the `limits` library: Redis storage when Redis is configured (shared by every
replica), in-process memory otherwise."""

import logging
import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError

from service.metrics import RATE_LIMIT_ERRORS, THROTTLED
from service.settings import Settings

log = logging.getLogger(__name__)


class RateLimited(Exception):
    """A tenant over one of its rate limits; the API answers 429 with Retry-After."""

    def __init__(self, limit_name: str, limit: str, retry_after_s: int) -> None:
        super().__init__(f"rate limit exceeded: {limit_name}={limit} per tenant; retry in {retry_after_s} s")
        self.limit_name = limit_name
        self.retry_after_s = retry_after_s


def limits_storage_uri(redis_url: str) -> str:
    """limits' spelling of a redis-py URL (async+redis://, async+rediss://, async+redis+unix://)."""
    scheme, sep, rest = redis_url.partition("://")
    return f"async+{'redis+unix' if scheme == 'unix' else scheme}{sep}{rest}"


class TenantRateLimits:
    """Sliding-window counters per tenant: one for every knowledge request, one more for encodes."""

    def __init__(self, settings: Settings) -> None:
        self._storage: Storage
        if settings.redis_url:
            self._storage = RedisStorage(
                limits_storage_uri(settings.redis_url),
                wrap_exceptions=True,
                implementation="redispy",
                key_prefix=f"{settings.key_prefix}:ratelimit",
                socket_timeout=settings.store_timeout_s,
                socket_connect_timeout=settings.store_timeout_s,
            )
        else:
            self._storage = MemoryStorage()
        self._limiter = SlidingWindowCounterRateLimiter(self._storage)
        self._request: RateLimitItem | None = parse(settings.rate_limit) if settings.rate_limit else None
        self._encode: RateLimitItem | None = parse(settings.encode_rate_limit) if settings.encode_rate_limit else None

    async def _hit(self, name: str, item: RateLimitItem, tenant: str) -> None:
        try:
            if await self._limiter.hit(item, tenant, name):
                return
            stats = await self._limiter.get_window_stats(item, tenant, name)
        except StorageError as exc:
            # Fail open: a Redis that is full (OOM), cannot persist (MISCONF) or is down must not also block the
            # reads and DELETEs that still work (a full Redis is emptied through DELETE); the store answers 503
            # itself where it cannot serve. Counted and logged, so a limiter that is not limiting is seen.
            RATE_LIMIT_ERRORS.inc()
            log.warning("rate limiter store error, request let through: %r", exc.storage_error)
            return
        THROTTLED.labels(reason=name).inc()
        raise RateLimited(name, str(item), max(1, math.ceil(stats.reset_time - time.time())))

    async def request(self, tenant: str) -> None:
        """RateLimited when the tenant is over rate_limit."""
        if self._request is not None:
            await self._hit("rate_limit", self._request, tenant)

    async def encode(self, tenant: str) -> None:
        """RateLimited when the tenant is over encode_rate_limit."""
        if self._encode is not None:
            await self._hit("encode_rate_limit", self._encode, tenant)
