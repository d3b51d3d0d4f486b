"""The embedded store (SQLite + DeltaLRU) and single-flight, in process."""

import asyncio
from pathlib import Path

import pytest

from service.single_flight import SingleFlight
from service.store import EmbeddedStore, Eviction
from service.store.lru import DeltaLRU
from tests.support import exercise_store, sample_record, sd


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# ----------------------------------------------------------------------------- DeltaLRU


def test_lru_is_byte_bounded_and_evicts_least_recently_used() -> None:
    events: list[Eviction] = []
    lru = DeltaLRU(max_bytes=10, on_evict=events.append)
    lru.put(("t", "a"), sd(b"aaaa"), 60)
    lru.put(("t", "b"), sd(b"bbbb"), 60)
    assert lru.get(("t", "a")) == sd(b"aaaa")  # a is now the most recent
    lru.put(("t", "c"), sd(b"cccc"), 60)  # 12 bytes > 10: b goes
    assert lru.get(("t", "b")) is None
    assert lru.get(("t", "a")) == sd(b"aaaa") and lru.get(("t", "c")) == sd(b"cccc")
    assert lru.nbytes == 8 and len(lru) == 2
    assert events == [Eviction("t", "b", 4, "capacity")]


def test_lru_refuses_a_blob_larger_than_its_bound() -> None:
    events: list[Eviction] = []
    lru = DeltaLRU(max_bytes=4, on_evict=events.append)
    lru.put(("t", "big"), sd(b"12345"), 60)
    assert lru.get(("t", "big")) is None and lru.nbytes == 0
    assert events[0].reason == "too_large"


def test_lru_entries_expire_and_can_be_touched() -> None:
    clock = FakeClock()
    events: list[Eviction] = []
    lru = DeltaLRU(max_bytes=100, on_evict=events.append, clock=clock)
    lru.put(("t", "a"), sd(b"a"), 10)
    lru.put(("t", "b"), sd(b"b"), 10)
    clock.now = 5
    assert lru.ttl(("t", "a")) == pytest.approx(5)
    assert lru.touch(("t", "b"), 100)
    clock.now = 11
    assert lru.get(("t", "a")) is None
    assert lru.get(("t", "b")) == sd(b"b")
    assert [e.reason for e in events] == ["expired"]
    assert lru.nbytes == 1


def test_lru_replacing_a_key_keeps_the_byte_count_right() -> None:
    lru = DeltaLRU(max_bytes=100)
    lru.put(("t", "a"), sd(b"x" * 10), 60)
    lru.put(("t", "a"), sd(b"y" * 20), 60)
    assert lru.nbytes == 20 and lru.get(("t", "a")) == sd(b"y" * 20)
    lru.discard(("t", "a"))
    assert lru.nbytes == 0


# ----------------------------------------------------------------------------- embedded store


def test_embedded_store_contract(tmp_path: Path) -> None:
    async def run() -> None:
        store = EmbeddedStore(tmp_path / "k.sqlite3", max_delta_bytes=1 << 20)
        try:
            await exercise_store(store)
        finally:
            await store.close()

    asyncio.run(run())


def test_embedded_store_facts_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "k.sqlite3"
    rec = sample_record()

    async def write() -> None:
        store = EmbeddedStore(path, max_delta_bytes=1 << 20)
        await store.put_knowledge("alice", rec)
        await store.put_delta("alice", rec.knowledge_id, sd(b"delta"), 60)
        await store.close()

    async def read() -> None:
        store = EmbeddedStore(path, max_delta_bytes=1 << 20)
        assert await store.get_knowledge("alice", rec.knowledge_id) == rec
        assert await store.get_delta("alice", rec.knowledge_id) is None  # deltas are memory only
        await store.close()

    asyncio.run(write())
    asyncio.run(read())


# ----------------------------------------------------------------------------- single flight


def test_single_flight_runs_once_for_concurrent_callers() -> None:
    runs = 0

    async def work() -> int:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.05)
        return 42

    async def run() -> list[tuple[int, bool]]:
        flight: SingleFlight[str, int] = SingleFlight()
        results = await asyncio.gather(*(flight.run("k", work) for _ in range(10)))
        assert len(flight) == 0
        again = await flight.run("k", work)  # a new flight once the first is done
        return [*results, again]

    results = asyncio.run(run())
    assert runs == 2
    assert all(value == 42 for value, _ in results)
    assert sum(leader for _, leader in results[:10]) == 1
    assert results[10][1] is True


def test_single_flight_shares_failures_and_survives_a_cancelled_leader() -> None:
    async def boom() -> int:
        await asyncio.sleep(0.01)
        raise RuntimeError("inner loop failed")

    async def slow() -> int:
        await asyncio.sleep(0.05)
        return 7

    async def run() -> None:
        flight: SingleFlight[str, int] = SingleFlight()
        outcomes = await asyncio.gather(*(flight.run("k", boom) for _ in range(3)), return_exceptions=True)
        assert all(isinstance(o, RuntimeError) for o in outcomes)

        leader = asyncio.ensure_future(flight.run("s", slow))
        await asyncio.sleep(0)
        follower = asyncio.ensure_future(flight.run("s", slow))
        await asyncio.sleep(0)
        leader.cancel()  # the leader's client went away
        assert await follower == (7, False)

    asyncio.run(run())
