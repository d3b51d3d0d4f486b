"""KnowledgeService, in process: a stub engine whose encodes and loads wait on the test, a real embedded store."""

import asyncio
from pathlib import Path

import pytest

from service.knowledge_service import KnowledgeService, UnknownKnowledge
from service.store import StoredDelta
from tests.unit.service_stubs import NS, StubEngine, ask, run, signed_delta, until

FACTS = ["Bob is big.", "If someone is big then they are rough."]


def test_concurrent_encodes_of_one_new_set_run_one_inner_loop(tmp_path: Path) -> None:
    async def scenario(service: KnowledgeService, engine: StubEngine) -> None:
        engine.hold("encode")
        calls = [asyncio.ensure_future(service.encode(NS, FACTS[::-1] if i % 2 else FACTS, None)) for i in range(8)]
        await until(lambda: engine.encodes == 1)
        engine.release("encode")
        outcomes = await asyncio.gather(*calls)
        assert engine.encodes == 1
        assert len({o.record.knowledge_id for o in outcomes}) == 1
        assert [o.cached for o in outcomes].count(False) == 1  # exactly one caller ran the inner loop

    run(tmp_path, scenario)


def test_concurrent_asks_on_a_lost_delta_reencode_once(tmp_path: Path) -> None:
    async def scenario(service: KnowledgeService, engine: StubEngine) -> None:
        kid = (await service.encode(NS, FACTS, None)).record.knowledge_id
        await service.store.delete_delta(NS, kid)  # evicted, expired or deleted behind the server's back
        engine.hold("encode")
        asks = [asyncio.ensure_future(ask(service, kid)) for _ in range(10)]
        await until(lambda: engine.encodes == 2)
        engine.release("encode")
        assert all(len(a) == 1 for a in await asyncio.gather(*asks))
        assert engine.encodes == 2  # the first encode and one re-encode, not one per ask
        assert await service.store.get_delta(NS, kid) is not None

    run(tmp_path, scenario)


def test_a_delete_during_a_reencode_leaves_neither_delta_nor_cached_weights(tmp_path: Path) -> None:
    async def scenario(service: KnowledgeService, engine: StubEngine) -> None:
        kid = (await service.encode(NS, FACTS, None)).record.knowledge_id
        await service.store.delete_delta(NS, kid)
        engine.hold("encode")
        asking = asyncio.ensure_future(ask(service, kid))
        await until(lambda: engine.encodes == 2)  # the re-encode is running
        await service.delete(NS, kid)
        engine.release("encode")
        assert len(await asking) == 1  # the ask that started before the DELETE is answered ...
        assert await service.store.get_delta(NS, kid) is None  # ... but nothing of the knowledge stays stored
        assert await service.store.get_knowledge(NS, kid) is None
        assert len(service.weights) == 0
        with pytest.raises(UnknownKnowledge):
            await ask(service, kid)

    run(tmp_path, scenario)


def test_weights_loaded_across_a_delete_are_not_cached(tmp_path: Path) -> None:
    async def scenario(service: KnowledgeService, engine: StubEngine) -> None:
        kid = (await service.encode(NS, FACTS, None)).record.knowledge_id
        service.weights.drop((NS, kid))  # cold: the next ask verifies and merges the stored blob
        engine.hold("load")
        asking = asyncio.ensure_future(ask(service, kid))
        await until(lambda: engine.loads == 1)
        await service.delete(NS, kid)
        engine.release("load")
        assert len(await asking) == 1
        assert len(service.weights) == 0  # the cache version moved on: these weights could never be served

    run(tmp_path, scenario)


def test_hot_asks_skip_loading_until_the_stored_delta_changes(tmp_path: Path) -> None:
    async def scenario(service: KnowledgeService, engine: StubEngine) -> None:
        kid = (await service.encode(NS, FACTS, None)).record.knowledge_id
        for _ in range(3):
            await ask(service, kid)
        assert engine.loads == 0  # the encode left its weights in the cache
        await service.store.put_delta(NS, kid, signed_delta(kid, b"delta:replaced"), 60)
        await ask(service, kid)
        await ask(service, kid)
        assert engine.loads == 1  # a changed delta (MAC) is loaded once, then served from the cache again

    run(tmp_path, scenario)


def test_a_refused_delta_is_rebuilt_but_a_loading_bug_surfaces(tmp_path: Path) -> None:
    async def scenario(service: KnowledgeService, engine: StubEngine) -> None:
        kid = (await service.encode(NS, FACTS, None)).record.knowledge_id
        await service.store.put_delta(NS, kid, StoredDelta(b"\x00garbage", "forged"), 60)
        await ask(service, kid)
        rebuilt = await service.store.get_delta(NS, kid)
        assert engine.encodes == 2 and rebuilt is not None and rebuilt.blob.startswith(b"delta:Bob")
        await service.store.put_delta(NS, kid, signed_delta(kid, b"delta:bug"), 60)
        with pytest.raises(RuntimeError, match="a bug"):
            await ask(service, kid)
        assert engine.encodes == 2

    run(tmp_path, scenario)


def test_an_encode_that_joins_a_reencode_across_a_delete_still_stores_its_facts(tmp_path: Path) -> None:
    """Issue 13.1, forced into its interleaving: an ask re-encodes X; a DELETE of X lands; the same facts are encoded
    again and join the running re-encode (same single-flight key). The encode answers 200, so X's facts must be
    stored afterwards (before the fix they were not: the re-encode writes no facts and then drops its delta)."""

    async def scenario(service: KnowledgeService, engine: StubEngine) -> list[str]:
        happened: list[str] = []
        kid = (await service.encode(NS, FACTS, None)).record.knowledge_id
        await service.store.delete_delta(NS, kid)  # evicted: the next ask re-encodes
        service.weights.invalidate((NS, kid))
        engine.hold("encode")
        asking = asyncio.ensure_future(ask(service, kid))
        await until(lambda: engine.encodes == 2)
        happened.append("re-encode running")
        await service.delete(NS, kid)
        happened.append("deleted")
        encoding = asyncio.ensure_future(service.encode(NS, FACTS[::-1], None))
        await until(lambda: service._flights.waiters((NS, kid)) == 2)  # the encode waits on the re-encode
        happened.append("encode joined the re-encode")
        assert not asking.done() and not encoding.done()
        engine.release("encode")

        assert len(await asking) == 1
        outcome = await encoding
        assert engine.encodes == 2, "the joining encode ran an inner loop of its own: no race exercised"
        assert outcome.cached is True
        record, delta = await service.info(NS, kid)  # UnknownKnowledge here was the bug: an acknowledged encode lost
        assert record.facts == sorted(FACTS) and delta.cached
        assert len(await ask(service, kid)) == 1
        return happened

    assert run(tmp_path, scenario) == ["re-encode running", "deleted", "encode joined the re-encode"]


def test_a_delete_during_a_new_encode_cannot_unstore_the_acknowledged_facts(tmp_path: Path) -> None:
    async def scenario(service: KnowledgeService, engine: StubEngine) -> None:
        engine.hold("encode")
        encoding = asyncio.ensure_future(service.encode(NS, FACTS, None))
        await until(lambda: engine.encodes == 1)
        kid = engine.knowledge_id(sorted(FACTS))
        with pytest.raises(UnknownKnowledge):  # nothing is stored before the inner loop is done
            await service.delete(NS, kid)
        engine.release("encode")
        assert (await encoding).cached is False
        record, delta = await service.info(NS, kid)
        assert record.facts == sorted(FACTS) and delta.cached

    run(tmp_path, scenario)


def test_a_forged_or_swapped_delta_is_refused_and_rebuilt_from_the_signed_facts(tmp_path: Path) -> None:
    async def scenario(service: KnowledgeService, engine: StubEngine) -> None:
        kid = (await service.encode(NS, FACTS, None)).record.knowledge_id
        other = (await service.encode(NS, FACTS[:1], None)).record.knowledge_id
        theirs = await service.store.get_delta(NS, other)
        assert theirs is not None
        forgeries = [
            StoredDelta(b"delta:Mallory is trusted.", "0" * 64),  # a well-formed blob under a made-up MAC
            theirs,  # another id's delta with its own (valid) MAC: a swap
            signed_delta(kid, b"delta:x", namespace="bob"),  # signed for another tenant
        ]
        for forged in forgeries:
            await service.store.put_delta(NS, kid, forged, 60)
            before = engine.encodes
            assert len(await ask(service, kid)) == 1
            assert engine.encodes == before + 1  # rebuilt from the facts
            rebuilt = await service.store.get_delta(NS, kid)
            assert rebuilt is not None and rebuilt.blob == ("delta:" + "|".join(sorted(FACTS))).encode()

    run(tmp_path, scenario)
