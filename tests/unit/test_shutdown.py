"""Shutdown drains the calls and (re-)encodes under way, so what they made is stored, then closes the engine,
then the store."""

import asyncio
from pathlib import Path
from typing import Any, cast

import pytest

from service import main
from service.engine import Engine
from service.knowledge_service import KnowledgeService
from service.store import EmbeddedStore
from tests.unit.service_stubs import NS, StubEngine, make_service, until

FACTS = ["Bob is kind.", "Anne is nice."]


def _recording(tmp_path: Path, events: list[str]) -> tuple[StubEngine, EmbeddedStore, KnowledgeService]:
    engine = StubEngine()
    engine.close = lambda: events.append("engine closed")  # type: ignore[method-assign]
    store = EmbeddedStore(tmp_path / "k.sqlite3", max_delta_bytes=1 << 20)
    close = store.close

    async def closing() -> None:
        events.append("store closed")
        await close()

    store.close = closing  # type: ignore[method-assign]
    return engine, store, make_service(engine, store)


def test_shutdown_waits_for_the_encode_then_closes_engine_then_store(tmp_path: Path) -> None:
    events: list[str] = []

    async def scenario() -> None:
        engine, store, service = _recording(tmp_path, events)
        engine.hold("encode")
        encoding = asyncio.ensure_future(service.encode(NS, FACTS, None))
        await until(lambda: engine.encodes == 1)
        engine.close = lambda: events.append("engine closed" + ("" if encoding.done() else " under the encode"))  # type: ignore[method-assign]
        closing = asyncio.ensure_future(main.shutdown(service, cast(Engine, engine), store))
        await asyncio.sleep(0.05)
        assert events == []  # nothing closes while the encode is under way
        engine.release("encode")
        outcome: Any = await encoding
        await closing
        assert events == ["engine closed", "store closed"]  # and the engine only once the encode had answered
        reopened = EmbeddedStore(tmp_path / "k.sqlite3", max_delta_bytes=1 << 20)
        assert await reopened.get_knowledge(NS, outcome.record.knowledge_id) is not None  # its facts are on disk
        await reopened.close()

    asyncio.run(scenario())


def test_work_that_outlives_the_drain_bound_is_cancelled_and_both_still_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    monkeypatch.setattr(main, "DRAIN_TIMEOUT_S", 0.05)

    async def scenario() -> None:
        engine, store, service = _recording(tmp_path, events)
        engine.hold("encode")  # never released: a stuck inner loop
        encoding = asyncio.ensure_future(service.encode(NS, FACTS, None))
        await until(lambda: engine.encodes == 1)
        await main.shutdown(service, cast(Engine, engine), store)
        assert events == ["engine closed", "store closed"]
        with pytest.raises(asyncio.CancelledError):
            await encoding

    asyncio.run(scenario())
