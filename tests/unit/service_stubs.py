"""KnowledgeService in process: a stub engine whose encodes and loads wait on the test, a real embedded store."""

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from reckoning_core.knowledge_ids import knowledge_id, normalize_facts
from reckoning_core.reckoner import Answer, MergedWeights
from reckoning_core.serialization import DeltaFormatError
from service.engine import Encoded
from service.integrity import Signer
from service.knowledge_service import KnowledgeService
from service.sizing import AskPlan
from service.store import EmbeddedStore, StoredDelta

T = TypeVar("T")
NS = "alice"
SIGNER = Signer(b"unit-test-secret-key-0123456789abcdef")


class StubEngine:
    """The Engine's interface without torch. A blob names its facts; `hold()` makes the next encodes or loads wait
    until `release()`, so a test can land a DELETE (or another request) while one is under way."""

    model_name = "stub"
    fingerprint = "f" * 64
    encode_hash = "e" * 64
    labels = None

    def __init__(self) -> None:
        self.encodes = 0
        self.loads = 0
        self.closed = False
        self._gates: dict[str, asyncio.Event] = {}

    def hold(self, what: str) -> None:
        self._gates[what] = asyncio.Event()

    def release(self, what: str) -> None:
        self._gates.pop(what).set()

    async def _wait(self, what: str) -> None:
        gate = self._gates.get(what)
        await (gate.wait() if gate else asyncio.sleep(0))

    async def check_facts(self, facts: list[str]) -> None:
        return None

    def normalize_facts(self, facts: list[str]) -> list[str]:
        return normalize_facts(facts)

    def knowledge_id(self, facts: list[str]) -> str:
        return knowledge_id(self.fingerprint, self.encode_hash, facts)

    async def encode(self, facts: list[str]) -> Encoded:
        self.encodes += 1
        await self._wait("encode")
        blob = ("delta:" + "|".join(facts)).encode()
        return Encoded(MergedWeights({}, len(blob)), blob, len(facts), 1.0, 0.1, 0.001)

    async def beside(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(*args)

    async def load_weights(self, blob: bytes, authenticate: Callable[[], None] | None = None) -> MergedWeights:
        self.loads += 1
        await self._wait("load")
        if authenticate is not None:
            authenticate()
        if blob == b"delta:bug":
            raise RuntimeError("a bug in loading, not a bad delta")
        if not blob.startswith(b"delta:"):
            raise DeltaFormatError("not a stub delta")
        return MergedWeights({}, len(blob))

    async def plan_ask(self, questions: list[str], choices: list[str] | None, max_new_tokens: int) -> AskPlan:
        return AskPlan([1] * len(questions))

    async def answer(self, questions: list[str], weights: Any, **_: Any) -> list[Answer]:
        assert isinstance(weights, MergedWeights)
        return [Answer(q, "True", None) for q in questions]

    def close(self) -> None:
        self.closed = True


def signed_delta(knowledge_id: str, blob: bytes, namespace: str = NS) -> StoredDelta:
    """A delta as this service would store it (a valid MAC under the test secret)."""
    mac = SIGNER.delta_mac(namespace, knowledge_id, StubEngine.fingerprint, StubEngine.encode_hash, blob)
    return StoredDelta(blob, mac)


def make_service(engine: StubEngine, store: EmbeddedStore) -> KnowledgeService:
    return KnowledgeService(engine, store, SIGNER, default_ttl_s=60, weight_cache_bytes=1 << 20)  # type: ignore[arg-type]


def run(tmp_path: Path, scenario: Callable[[KnowledgeService, StubEngine], Awaitable[T]]) -> T:
    async def main() -> T:
        engine = StubEngine()
        store = EmbeddedStore(tmp_path / "k.sqlite3", max_delta_bytes=1 << 20)
        try:
            return await scenario(make_service(engine, store), engine)
        finally:
            await store.close()

    return asyncio.run(main())


async def until(predicate: Callable[[], bool]) -> None:
    for _ in range(5000):
        if predicate():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("never happened")


async def ask(service: KnowledgeService, kid: str) -> list[Answer]:
    return await service.ask(NS, kid, ["Bob is rough."], choices=None, max_new_tokens=4)
