"""SingleFlight: at most one coroutine per key at a time; concurrent callers share its result."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class SingleFlight(Generic[K, T]):
    """Run at most one coroutine per key at a time; concurrent callers share its result.

    The work runs as a task of its own, so a caller that goes away (a client disconnect cancels its request)
    does not cancel work others wait for; once the last caller has gone, nobody wants the result and the
    work is cancelled (what it has not started never runs)."""

    def __init__(self) -> None:
        self._inflight: dict[K, asyncio.Task[T]] = {}
        self._waiters: dict[K, int] = {}

    def __len__(self) -> int:
        return len(self._inflight)

    def waiters(self, key: K) -> int:
        """Callers currently waiting for the work under `key` (0 when none runs)."""
        return self._waiters.get(key, 0)

    async def run(self, key: K, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Return (result, leader); leader is True for the caller whose call started the work."""
        task = self._inflight.get(key)
        leader = task is None
        if task is None:
            task = asyncio.ensure_future(work())
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        self._waiters[key] = self._waiters.get(key, 0) + 1
        try:
            return await asyncio.shield(task), leader
        finally:
            left = self._waiters[key] - 1
            if left:
                self._waiters[key] = left
            else:
                del self._waiters[key]
                if not task.done():
                    task.cancel()  # everyone who wanted it has gone

    async def drain(self, timeout_s: float) -> int:
        """Wait up to timeout_s for the work in flight to finish, then cancel the rest (and wait until it has
        unwound); returns how many were cancelled."""
        pending = list(self._inflight.values())
        if not pending:
            return 0
        _, still = await asyncio.wait(pending, timeout=timeout_s) if timeout_s > 0 else (set(), set(pending))
        for task in still:
            task.cancel()
        if still:
            await asyncio.wait(still)
        return len(still)

    def _forget(self, key: K, done: asyncio.Task[T]) -> None:
        if self._inflight.get(key) is done:
            del self._inflight[key]
        if not done.cancelled() and done.exception() is not None:
            # Marks the exception as retrieved when every waiter has gone away.
            log.debug("single-flight work for %r failed: %r", key, done.exception())
