"""The engine's two pools: stored deltas load beside forward passes, and that never mixes up weights."""

import asyncio
import threading
from pathlib import Path

import pytest

from service.engine import Engine, MergedWeights

FACT_SETS = [
    [f"The {animal} is {colour}.", f"If something is {colour} then it is big.", f"The {animal} likes the cat."]
    for animal, colour in [("dog", "red"), ("bear", "blue"), ("mouse", "green"), ("cow", "round")]
]
QUESTIONS = ["The dog is big.", "The bear likes the cat.", "The mouse is not green."]


def _scores(answers: list) -> list[dict[str, float]]:
    return [a.scores for a in answers]


@pytest.mark.parametrize("load_workers", [0, 1, 2])
def test_loads_run_beside_answers_and_each_ask_gets_its_own_weights(tiny_checkpoint: Path, load_workers: int) -> None:
    engine = Engine.load(tiny_checkpoint, torch_threads=1, load_workers=load_workers)
    threads: list[str] = []
    merged = engine.reckoner.merged

    def recording_merged(delta: dict) -> MergedWeights:
        threads.append(threading.current_thread().name)
        return merged(delta)

    engine.reckoner.merged = recording_merged  # type: ignore[method-assign]

    async def run() -> None:
        blobs = [(await engine.encode(facts)).blob for facts in FACT_SETS]
        threads.clear()  # encode merges too, always on the torch worker
        # reference: one blob at a time, nothing else running
        expected = []
        for blob in blobs:
            weights = await engine.load_weights(blob)
            expected.append(_scores(await engine.answer(QUESTIONS, weights, choices=None, max_new_tokens=4)))
        assert len({str(e) for e in expected}) == len(blobs)  # the deltas really answer differently

        async def ask(i: int) -> list[dict[str, float]]:
            weights = await engine.load_weights(blobs[i])
            return _scores(await engine.answer(QUESTIONS, weights, choices=None, max_new_tokens=4))

        order = [i % len(blobs) for i in range(24)]
        got = await asyncio.gather(*(ask(i) for i in order))
        assert got == [expected[i] for i in order]

    try:
        asyncio.run(run())
    finally:
        engine.close()
    assert len(threads) == 4 + 24
    prefix = "reckoning-load" if load_workers else "reckoning-torch"
    assert all(name.startswith(prefix) for name in threads), set(threads)
