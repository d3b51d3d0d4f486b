"""The engine's bounds, in process on the tiny model: facts the inner loop would cut, asks over max_ask_tokens,
the encode queue (429 past max_pending_encodes), work dropped when its caller leaves, asks in chunks."""

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from reckoning_core.reckoner import Reckoner
from service.engine import EncodeQueueFull, Engine
from service.metrics import ENCODES_CANCELLED
from service.sizing import AskTooLarge, FactTooLong, InputTooLong


@pytest.fixture(scope="module")
def reckoner(tiny_gpt2: Path) -> Reckoner:
    return Reckoner.from_pretrained(tiny_gpt2)


def test_a_fact_longer_than_the_model_encodes_is_named_with_the_limit(reckoner: Reckoner) -> None:
    engine = Engine(reckoner)
    limit = reckoner.config.encode.max_fact_tokens - 2
    assert engine.sizer.fact_limit == limit
    engine.sizer.check_facts_sync(["Bob is kind.", "  ", "Anne is nice."])
    with pytest.raises(FactTooLong) as refused:
        engine.sizer.check_facts_sync(["Bob is kind.", "", "v" * 150])
    assert refused.value.index == 2 and refused.value.limit == limit and refused.value.tokens > limit
    message = str(refused.value)
    assert f"fact 2 has {refused.value.tokens} tokens" in message and f"at most {limit}" in message
    # Exactly at the limit is fine: what fits is encoded whole.
    ids = engine.sizer.tokenizer("v" * 400, add_special_tokens=False)["input_ids"][:limit]
    engine.sizer.check_facts_sync([engine.sizer.tokenizer.decode(ids)])
    engine.close()


def test_ask_tokens_count_prompts_times_choices_and_refuse_over_the_limit(reckoner: Reckoner) -> None:
    engine = Engine(reckoner, max_ask_tokens=1000)
    plan = engine.sizer.plan_ask_sync(["Bob is kind.", "Anne is nice."], None, 8)  # the label set: 3 choices
    prompt = 1 + len(engine.sizer.tokenizer("Question: Bob is kind.\nAnswer:", add_special_tokens=False)["input_ids"])
    tokenizer = engine.sizer.tokenizer
    labels = sum(len(tokenizer(" " + c, add_special_tokens=False)["input_ids"]) for c in reckoner.labels or [])
    assert plan.costs[0] == 3 * prompt + labels
    with pytest.raises(AskTooLarge, match="max_ask_tokens=1,000") as refused:
        engine.sizer.plan_ask_sync(["Bob is kind."] * 64, ["yes", "no", "maybe not"], 8)
    assert "64 question(s) x 3 choice(s)" in str(refused.value)
    with pytest.raises(InputTooLong):
        engine.sizer.plan_ask_sync(["ok", "中" * 200], None, 8)
    engine.close()


class _Held:
    """Wraps reckoner.encode: every inner loop waits for `release`; `started` counts those that began."""

    def __init__(self, reckoner: Reckoner) -> None:
        self.inner = reckoner.encode
        self.release = threading.Event()
        self.started: list[list[str]] = []

    def __call__(self, facts: list[str], **kw: Any) -> Any:
        self.started.append(facts)
        assert self.release.wait(30)
        return self.inner(facts, **kw)


def test_the_encode_queue_is_bounded_and_a_cancelled_wait_never_runs(
    reckoner: Reckoner, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = _Held(reckoner)
    monkeypatch.setattr(reckoner, "encode", held)
    engine = Engine(reckoner, max_pending_encodes=3)

    async def scenario() -> None:
        running = asyncio.create_task(engine.encode(["Bob is kind."]))
        while not held.started:
            await asyncio.sleep(0.01)
        waiting = [asyncio.create_task(engine.encode([f"Anne {i} is nice."])) for i in range(2)]
        await asyncio.sleep(0.05)
        assert engine.pending_encodes == 3
        with pytest.raises(EncodeQueueFull, match="max_pending_encodes=3") as full:
            await engine.encode(["Carol is big."])
        assert full.value.retry_after_s >= 1
        cancelled = ENCODES_CANCELLED._value.get()
        waiting[0].cancel()  # its client went away while it waited
        await asyncio.sleep(0.05)
        assert engine.pending_encodes == 2 and ENCODES_CANCELLED._value.get() == cancelled + 1
        held.release.set()
        await running
        await waiting[1]
        assert held.started == [["Bob is kind."], ["Anne 1 is nice."]]  # the cancelled one never ran
        assert engine.pending_encodes == 0

    asyncio.run(scenario())
    engine.close()


def test_a_large_ask_runs_as_several_torch_jobs(reckoner: Reckoner, monkeypatch: pytest.MonkeyPatch) -> None:
    import service.engine as engine_module

    engine = Engine(reckoner)
    calls: list[int] = []
    answer = reckoner.answer

    def spy(questions: list[str], *args: Any, **kw: Any) -> Any:
        calls.append(len(questions))
        return answer(questions, *args, **kw)

    monkeypatch.setattr(reckoner, "answer", spy)
    monkeypatch.setattr(engine_module, "ANSWER_BATCH_TOKENS", 200)
    questions = [f"Bob {i} is kind." for i in range(20)]
    got = asyncio.run(engine.answer(questions, None, choices=None, max_new_tokens=4))
    assert [a.question for a in got] == questions  # in order
    assert len(calls) > 1 and sum(calls) == len(questions)  # chunks: other jobs may run between them
    whole = reckoner.answer(questions, None)
    for mine, theirs in zip(got, whole, strict=True):
        assert mine.scores == pytest.approx(theirs.scores, abs=1e-5)
    engine.close()
