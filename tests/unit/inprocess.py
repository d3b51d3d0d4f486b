"""The app in process: its lifespan run by the test, requests through httpx's ASGI transport (no sockets)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import httpx
from fastapi import FastAPI

from service.main import create_app
from service.settings import Settings

T = TypeVar("T")


@contextlib.asynccontextmanager
async def serving(settings: Settings, key: str | None = None) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app", headers=headers) as client:
            yield app, client


def serve(settings: Settings, scenario: Callable[[httpx.AsyncClient], Awaitable[T]], key: str | None = None) -> T:
    """Run `scenario` against the app (with `key` as the bearer token) and return what it returns."""

    async def main() -> T:
        async with serving(settings, key) as (_, client):
            return await scenario(client)

    return asyncio.run(main())


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
