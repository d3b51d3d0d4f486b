"""The app in process: its lifespan run by the test, requests through httpx's ASGI transport (no server)."""

import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI

from service.main import create_app
from service.settings import Settings


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://in-process") as client:
            yield app, client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
