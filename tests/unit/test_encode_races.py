"""Races between encode, ask (re-encode) and DELETE, each forced into the interleaving it names and checked to
have happened that way (in process: a stub engine whose inner loop the test holds open, the embedded store)."""

import asyncio
from pathlib import Path

import pytest

from service.knowledge_service import UnknownKnowledge
from service.store import EmbeddedStore
from tests.unit.service_stubs import StubEngine, service, until

FACTS = ["Bob is kind.", "Anne is nice.", "If someone is kind then they are nice."]


def test_an_encode_that_joins_a_reencode_across_a_delete_still_stores_its_facts(tmp_path: Path) -> None:
    """Issue 13.1: an ask re-encodes X; a DELETE of X lands; the same facts are encoded again and join the running
    re-encode (same single-flight key). The encode answers 200, so X's facts must be stored afterwards."""

    async def scenario() -> list[str]:
        store = EmbeddedStore(tmp_path / "k.sqlite3", max_delta_bytes=1 << 20)
        engine = StubEngine()
        knowledge = service(engine, store)
        happened: list[str] = []
        kid = (await knowledge.encode("t", FACTS, None)).record.knowledge_id
        await store.delete_delta("t", kid)  # evicted: the next ask re-encodes
        knowledge.weights.invalidate(("t", kid))
        engine.gate, engine.entered = asyncio.Event(), asyncio.Event()

        ask = asyncio.create_task(knowledge.ask("t", kid, ["Bob is kind."], choices=None, max_new_tokens=4))
        await asyncio.wait_for(engine.entered.wait(), 5)
        happened.append("re-encode running")
        await knowledge.delete("t", kid)
        happened.append("deleted")
        encode = asyncio.create_task(knowledge.encode("t", FACTS[::-1], None))
        await until(lambda: knowledge._flights.waiters(("t", kid)) == 2)  # the encode waits on the re-encode
        happened.append("encode joined the re-encode")
        assert not ask.done() and not encode.done() and len(engine.encodes) == 2  # the first encode + the re-encode
        engine.gate.set()

        answers = await ask
        outcome = await encode
        assert len(engine.encodes) == 2, "the joining encode ran an inner loop of its own: no race exercised"
        assert outcome.cached is True and answers[0].answer == "True"
        record, delta = await knowledge.info("t", kid)  # UnknownKnowledge here is the bug: an acknowledged encode lost
        assert record.facts == sorted(FACTS) and delta.cached
        assert (await knowledge.ask("t", kid, ["Anne is nice."], choices=None, max_new_tokens=4))[0].answer
        await store.close()
        return happened

    assert asyncio.run(scenario()) == ["re-encode running", "deleted", "encode joined the re-encode"]


def test_a_delete_during_a_reencode_leaves_no_delta_behind(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = EmbeddedStore(tmp_path / "k.sqlite3", max_delta_bytes=1 << 20)
        engine = StubEngine()
        knowledge = service(engine, store)
        kid = (await knowledge.encode("t", FACTS, None)).record.knowledge_id
        await store.delete_delta("t", kid)
        knowledge.weights.invalidate(("t", kid))
        engine.gate, engine.entered = asyncio.Event(), asyncio.Event()
        ask = asyncio.create_task(knowledge.ask("t", kid, ["Bob is kind."], choices=None, max_new_tokens=4))
        await asyncio.wait_for(engine.entered.wait(), 5)
        await knowledge.delete("t", kid)  # lands while the inner loop runs
        assert not ask.done()
        engine.gate.set()
        await ask  # began before the DELETE: it may answer
        assert await store.get_delta("t", kid) is None  # but nothing of the set stays stored
        assert await store.get_knowledge("t", kid) is None
        with pytest.raises(UnknownKnowledge):
            await knowledge.info("t", kid)
        await store.close()

    asyncio.run(scenario())


def test_a_delete_during_a_new_encode_cannot_unstore_the_acknowledged_facts(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = EmbeddedStore(tmp_path / "k.sqlite3", max_delta_bytes=1 << 20)
        engine = StubEngine()
        knowledge = service(engine, store)
        engine.gate = asyncio.Event()
        encode = asyncio.create_task(knowledge.encode("t", FACTS, None))
        await asyncio.wait_for(engine.entered.wait(), 5)
        kid = engine.knowledge_id(sorted(FACTS))
        with pytest.raises(UnknownKnowledge):  # nothing is stored before the inner loop is done
            await knowledge.delete("t", kid)
        engine.gate.set()
        outcome = await encode
        assert outcome.cached is False
        record, delta = await knowledge.info("t", kid)
        assert record.facts == sorted(FACTS) and delta.cached
        await store.close()

    asyncio.run(scenario())
