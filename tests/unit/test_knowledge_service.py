"""KnowledgeService, in process: a stub engine whose encodes and loads wait on the test, a real embedded store."""

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from reckoning_core.knowledge_ids import knowledge_id, normalize_facts
from reckoning_core.reckoner import Answer, MergedWeights
from reckoning_core.serialization import DeltaFormatError
from service.engine import Encoded
from service.knowledge_service import KnowledgeService, UnknownKnowledge
from service.store import EmbeddedStore

T = TypeVar("T")
NS = "alice"
FACTS = ["Bob is big.", "If someone is big then they are rough."]


class StubEngine:
    """The Engine's interface without torch. A blob names its facts; `hold()` makes the next encodes or loads wait
    until `release()`, so a test can land a DELETE (or another request) while one is under way."""

    model_name = "stub"
    fingerprint = "f" * 64
    labels = None

    def __init__(self) -> None:
        self.encodes = 0
        self.loads = 0
        self._gates: dict[str, asyncio.Event] = {}

    def hold(self, what: str) -> None:
        self._gates[what] = asyncio.Event()

    def release(self, what: str) -> None:
        self._gates.pop(what).set()

    async def _wait(self, what: str) -> None:
        gate = self._gates.get(what)
        await (gate.wait() if gate else asyncio.sleep(0))

    def normalize_facts(self, facts: list[str]) -> list[str]:
        return normalize_facts(facts)

    def knowledge_id(self, facts: list[str]) -> str:
        return knowledge_id(self.fingerprint, "stub-encode", facts)

    async def encode(self, facts: list[str]) -> Encoded:
        self.encodes += 1
        await self._wait("encode")
        blob = ("delta:" + "|".join(facts)).encode()
        return Encoded(MergedWeights({}, len(blob)), blob, len(facts), 1.0, 0.1, 0.001)

    async def load_weights(self, blob: bytes) -> MergedWeights:
        self.loads += 1
        await self._wait("load")
        if blob == b"delta:bug":
            raise RuntimeError("a bug in loading, not a bad delta")
        if not blob.startswith(b"delta:"):
            raise DeltaFormatError("not a stub delta")
        return MergedWeights({}, len(blob))

    async def answer(self, questions: list[str], weights: Any, *, choices: Any, max_new_tokens: int) -> list[Answer]:
        assert isinstance(weights, MergedWeights)
        return [Answer(q, "True", None) for q in questions]


def run(tmp_path: Path, scenario: Callable[[KnowledgeService, StubEngine], Awaitable[T]]) -> T:
    async def main() -> T:
        engine = StubEngine()
        store = EmbeddedStore(tmp_path / "k.sqlite3", max_delta_bytes=1 << 20)
        service = KnowledgeService(engine, store, default_ttl_s=60, weight_cache_bytes=1 << 20)  # type: ignore[arg-type]
        try:
            return await scenario(service, engine)
        finally:
            await store.close()

    return asyncio.run(main())


async def until(predicate: Callable[[], bool]) -> None:
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("never happened")


async def ask(service: KnowledgeService, kid: str) -> list[Answer]:
    return await service.ask(NS, kid, ["Bob is rough."], choices=None, max_new_tokens=4)


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


def test_hot_asks_skip_loading_until_the_stored_blob_changes(tmp_path: Path) -> None:
    async def scenario(service: KnowledgeService, engine: StubEngine) -> None:
        kid = (await service.encode(NS, FACTS, None)).record.knowledge_id
        for _ in range(3):
            await ask(service, kid)
        assert engine.loads == 0  # the encode left its weights in the cache
        await service.store.put_delta(NS, kid, b"delta:replaced", 60)
        await ask(service, kid)
        await ask(service, kid)
        assert engine.loads == 1  # a changed blob is loaded once, then served from the cache again

    run(tmp_path, scenario)


def test_a_refused_delta_is_rebuilt_but_a_loading_bug_surfaces(tmp_path: Path) -> None:
    async def scenario(service: KnowledgeService, engine: StubEngine) -> None:
        kid = (await service.encode(NS, FACTS, None)).record.knowledge_id
        await service.store.put_delta(NS, kid, b"\x00garbage", 60)
        await ask(service, kid)
        assert engine.encodes == 2 and (await service.store.get_delta(NS, kid) or b"").startswith(b"delta:Bob")
        await service.store.put_delta(NS, kid, b"delta:bug", 60)
        with pytest.raises(RuntimeError, match="a bug"):
            await ask(service, kid)
        assert engine.encodes == 2

    run(tmp_path, scenario)
