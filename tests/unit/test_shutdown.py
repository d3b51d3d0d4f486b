"""Shutdown drains the (re-)encodes in flight, so their results are stored, then closes the engine, then the store."""

import asyncio
from pathlib import Path
from typing import cast

import pytest

from service import main
from service.engine import Engine
from service.store import EmbeddedStore
from tests.unit.service_stubs import Recorder, StubEngine, service

FACTS = ["Bob is kind.", "Anne is nice."]


class _ClosingEngine(StubEngine):
    def __init__(self, record: Recorder) -> None:
        super().__init__()
        self.record = record

    def close(self) -> None:
        self.record("engine closed")


def _store(tmp_path: Path, record: Recorder) -> EmbeddedStore:
    store = EmbeddedStore(tmp_path / "k.sqlite3", max_delta_bytes=1 << 20)
    close = store.close

    async def closing() -> None:
        record("store closed")
        await close()

    store.close = closing  # type: ignore[method-assign]
    return store


def test_shutdown_waits_for_the_flight_then_closes_engine_then_store(tmp_path: Path) -> None:
    record = Recorder()

    async def scenario() -> None:
        engine = _ClosingEngine(record)
        store = _store(tmp_path, record)
        knowledge = service(engine, store)
        engine.gate = asyncio.Event()
        encode = asyncio.create_task(knowledge.encode("t", FACTS, None))
        await asyncio.wait_for(engine.entered.wait(), 5)
        closing = asyncio.create_task(main.shutdown(knowledge, cast(Engine, engine), store))
        await asyncio.sleep(0.05)
        assert record.events == []  # nothing closes while the encode is in flight
        engine.gate.set()
        outcome = await encode
        record("encode answered")
        await closing
        kid = outcome.record.knowledge_id
        assert record.events == ["encode answered", "engine closed", "store closed"]
        reopened = EmbeddedStore(tmp_path / "k.sqlite3", max_delta_bytes=1 << 20)
        assert await reopened.get_knowledge("t", kid) is not None  # the drained encode's facts are on disk
        await reopened.close()

    asyncio.run(scenario())


def test_a_flight_that_outlives_the_drain_bound_is_cancelled_and_shutdown_still_closes_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = Recorder()
    monkeypatch.setattr(main, "DRAIN_TIMEOUT_S", 0.05)

    async def scenario() -> None:
        engine = _ClosingEngine(record)
        store = _store(tmp_path, record)
        knowledge = service(engine, store)
        engine.gate = asyncio.Event()  # never set: a stuck inner loop
        encode = asyncio.create_task(knowledge.encode("t", FACTS, None))
        await asyncio.wait_for(engine.entered.wait(), 5)
        await main.shutdown(knowledge, cast(Engine, engine), store)
        assert record.events == ["engine closed", "store closed"]
        with pytest.raises(asyncio.CancelledError):
            await encode

    asyncio.run(scenario())
