"""SingleFlight: at most one coroutine per key at a time; concurrent callers share its result."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class SingleFlight(Generic[K, T]):
    """Run at most one coroutine per key at a time; concurrent callers share its result."""

    def __init__(self) -> None:
        self._inflight: dict[K, asyncio.Future[T]] = {}

    def __len__(self) -> int:
        return len(self._inflight)

    async def run(self, key: K, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Return (result, leader); leader is True for the caller whose call did the work."""
        future = self._inflight.get(key)
        leader = future is None
        if future is None:
            # A task, not a bare await: a leader whose client disconnects must not cancel
            # the work the followers are waiting for.
            task: asyncio.Future[T] = asyncio.ensure_future(work())
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
            future = task
        return await asyncio.shield(future), leader

    def _forget(self, key: K, done: asyncio.Future[T]) -> None:
        if self._inflight.get(key) is done:
            del self._inflight[key]
        if not done.cancelled() and done.exception() is not None:
            # Marks the exception as retrieved when every waiter has gone away.
            log.debug("single-flight work for %r failed: %r", key, done.exception())
