"""A stub Engine for in-process KnowledgeService tests: instant encodes whose start and end the test controls."""

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar, cast

from reckoning_core.knowledge_ids import knowledge_id, normalize_facts
from reckoning_core.reckoner import Answer, MergedWeights
from reckoning_core.serialization import DeltaFormatError
from service.engine import Encoded, Engine
from service.integrity import Signer
from service.knowledge_service import KnowledgeService
from service.sizing import AskPlan
from service.store import KnowledgeStore

T = TypeVar("T")
SECRET = b"unit-test-secret-key-0123456789abcdef"


class StubEngine:
    """Quacks like service.engine.Engine. `gate` (when set) holds every inner loop until it is set; `entered`
    is set when one starts; `encodes` lists the facts of every inner loop that ran."""

    fingerprint = "f" * 64
    encode_hash = "e" * 64
    model_name = "stub"
    labels = ("True", "False", "Unknown")

    def __init__(self) -> None:
        self.encodes: list[list[str]] = []
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def check_facts(self, facts: list[str]) -> None:
        return None

    def normalize_facts(self, facts: list[str]) -> list[str]:
        return normalize_facts(facts)

    def knowledge_id(self, facts: list[str]) -> str:
        return knowledge_id(self.fingerprint, self.encode_hash, facts)

    async def encode(self, facts: list[str]) -> Encoded:
        self.encodes.append(list(facts))
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        blob = ("delta:" + "|".join(facts)).encode()
        return Encoded(MergedWeights({}, 0), blob, len(facts), 1.0, 0.1, 0.01)

    async def beside(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(*args)

    async def load_weights(self, blob: bytes, verify: Callable[[], None] | None = None) -> MergedWeights:
        if verify is not None:
            verify()
        if not blob.startswith(b"delta:"):
            raise DeltaFormatError("not a stub delta")
        return MergedWeights({}, 0)

    async def plan_ask(self, questions: list[str], choices: list[str] | None, max_new_tokens: int) -> AskPlan:
        return AskPlan([1] * len(questions))

    async def answer(self, questions: list[str], weights: Any, **_: Any) -> list[Answer]:
        return [Answer(q, "True", None) for q in questions]


def service(engine: StubEngine, store: KnowledgeStore) -> KnowledgeService:
    return KnowledgeService(cast(Engine, engine), store, Signer(SECRET), default_ttl_s=60, weight_cache_bytes=1 << 20)


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Yield to the loop until `condition` holds (AssertionError after timeout_s)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.001)


class Recorder:
    """Appends what happened, in order, for tests of sequencing."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def __call__(self, event: str) -> None:
        self.events.append(event)
