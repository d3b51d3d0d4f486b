"""Work a request does only while its client still waits for the answer."""

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from fastapi import Request

T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected before its answer was ready; nothing is sent (counted as status 499)."""


async def until_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """Await `work`, cancelling it if the client disconnects first.

    ASGI servers keep running a handler whose client has gone; cancelling it here lets the work it queued
    (an inner loop waiting for the torch worker) be dropped, unless other requests share it (single-flight)."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        # The body was read already, so the next message is the disconnect (or the end of the response).
        while (await request.receive())["type"] != "http.disconnect":
            pass
        task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await task
    except asyncio.CancelledError:
        if task.cancelled() and not _current_cancelled():
            raise ClientGone() from None
        raise
    finally:
        watcher.cancel()


def _current_cancelled() -> bool:
    current = asyncio.current_task()
    return current is not None and current.cancelling() > 0
