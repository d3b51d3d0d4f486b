"""Stores and single-flight, in process: the embedded SQLite + LRU store, RedisStore on a real redis-server."""

import asyncio
import time
from pathlib import Path

import pytest

from benchmarks.processes import RedisProcess, free_port
from service.single_flight import SingleFlight
from service.store import (
    EmbeddedStore,
    Eviction,
    KnowledgeRecord,
    KnowledgeStore,
    Quota,
    QuotaExceeded,
    RedisStore,
    StoredDelta,
    StoreUnavailable,
    Usage,
)
from service.store.lru import DeltaLRU

MODEL = "ab" * 32  # a model fingerprint: Redis keeps deltas per model


def d(blob: bytes, mac: str = "mac") -> StoredDelta:
    return StoredDelta(blob, mac)


def record(knowledge_id: str = "k" * 64, facts: list[str] | None = None) -> KnowledgeRecord:
    return KnowledgeRecord(
        knowledge_id=knowledge_id,
        facts=facts or ["Bob is kind.", "Ünïcödé is fine."],
        created=time.time(),
        model="tiny",
        fingerprint="f" * 64,
        recall=1.0,
        final_inner_loss=0.5,
        delta_bytes=3,
        ttl_s=60,
        encode_ms=1.0,
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# ----------------------------------------------------------------------------- DeltaLRU


def test_lru_is_byte_bounded_and_evicts_least_recently_used() -> None:
    events: list[Eviction] = []
    lru = DeltaLRU(max_bytes=10, on_evict=events.append)
    lru.put(("t", "a"), d(b"aaaa"), 60)
    lru.put(("t", "b"), d(b"bbbb"), 60)
    assert lru.get(("t", "a")) == d(b"aaaa")  # a is now the most recent
    lru.put(("t", "c"), d(b"cccc"), 60)  # 12 bytes > 10: b goes
    assert lru.get(("t", "b")) is None
    assert lru.get(("t", "a")) == d(b"aaaa") and lru.get(("t", "c")) == d(b"cccc")
    assert lru.nbytes == 8 and len(lru) == 2
    assert events == [Eviction("t", "b", 4, "capacity")]


def test_lru_refuses_a_blob_larger_than_its_bound() -> None:
    events: list[Eviction] = []
    lru = DeltaLRU(max_bytes=4, on_evict=events.append)
    lru.put(("t", "big"), d(b"12345"), 60)
    assert lru.get(("t", "big")) is None and lru.nbytes == 0
    assert events[0].reason == "too_large"


def test_lru_entries_expire_and_can_be_touched() -> None:
    clock = FakeClock()
    events: list[Eviction] = []
    lru = DeltaLRU(max_bytes=100, on_evict=events.append, clock=clock)
    lru.put(("t", "a"), d(b"a"), 10)
    lru.put(("t", "b"), d(b"b"), 10)
    clock.now = 5
    assert lru.ttl(("t", "a")) == pytest.approx(5)
    assert lru.touch(("t", "b"), 100)
    clock.now = 11
    assert lru.get(("t", "a")) is None
    assert lru.get(("t", "b")) == d(b"b")
    assert [e.reason for e in events] == ["expired"]
    assert lru.nbytes == 1


def test_lru_replacing_a_key_keeps_the_byte_count_right() -> None:
    lru = DeltaLRU(max_bytes=100)
    lru.put(("t", "a"), d(b"x" * 10), 60)
    lru.put(("t", "a"), d(b"y" * 20), 60)
    assert lru.nbytes == 20 and lru.get(("t", "a")) == d(b"y" * 20)
    lru.discard(("t", "a"))
    assert lru.nbytes == 0


# ----------------------------------------------------------------------------- stores


async def _exercise(store: KnowledgeStore) -> None:
    """The KnowledgeStore contract, identical for both implementations."""
    assert isinstance(store, KnowledgeStore)
    await store.ping()
    rec = record()
    assert await store.get_knowledge("alice", rec.knowledge_id) is None
    assert await store.put_knowledge("alice", rec) is True
    assert await store.put_knowledge("alice", record(facts=["other"])) is False  # first write wins
    assert await store.get_knowledge("alice", rec.knowledge_id) == rec
    assert await store.get_knowledge("bob", rec.knowledge_id) is None  # namespaces are separate

    assert (await store.delta_status("alice", rec.knowledge_id)).cached is False
    assert await store.delta_mac("alice", rec.knowledge_id) is None
    await store.put_delta("alice", rec.knowledge_id, d(b"\x00blob\xff", "m1"), 30)
    assert await store.get_delta("alice", rec.knowledge_id) == d(b"\x00blob\xff", "m1")
    assert await store.delta_mac("alice", rec.knowledge_id) == "m1"
    status = await store.delta_status("alice", rec.knowledge_id)
    assert status.cached and status.ttl_s is not None and 25 < status.ttl_s <= 30
    assert await store.touch_delta("alice", rec.knowledge_id, 300)
    status = await store.delta_status("alice", rec.knowledge_id)
    assert status.ttl_s is not None and status.ttl_s > 250
    assert await store.get_delta("bob", rec.knowledge_id) is None
    assert await store.touch_delta("bob", rec.knowledge_id, 300) is False

    async with store.flight_lock("alice", rec.knowledge_id):  # free: taken at once
        pass

    assert await store.delete_knowledge("bob", rec.knowledge_id) is False
    assert await store.delete_knowledge("alice", rec.knowledge_id) is True
    assert await store.get_knowledge("alice", rec.knowledge_id) is None
    assert await store.get_delta("alice", rec.knowledge_id) is None
    assert await store.delete_knowledge("alice", rec.knowledge_id) is False

    # Quotas: usage follows creates and deletes; a set over a quota is refused and nothing is stored.
    assert await store.usage("carol") == Usage()
    first, second = record("1" * 64), record("2" * 64)
    assert await store.put_knowledge("carol", first, Quota(max_sets=1)) is True
    assert await store.usage("carol") == Usage(1, first.nbytes)
    assert await store.put_knowledge("carol", first, Quota(max_sets=1)) is False  # exists: no quota question
    with pytest.raises(QuotaExceeded, match="tenant_max_knowledge_sets=1"):
        await store.put_knowledge("carol", second, Quota(max_sets=1))
    with pytest.raises(QuotaExceeded, match="tenant_max_bytes"):
        await store.put_knowledge("carol", second, Quota(max_bytes=first.nbytes + 10))
    assert await store.get_knowledge("carol", second.knowledge_id) is None
    assert await store.put_knowledge("carol", second, Quota(max_sets=2)) is True
    assert await store.usage("carol") == Usage(2, first.nbytes + second.nbytes)
    assert await store.delete_knowledge("carol", first.knowledge_id) is True
    assert await store.usage("carol") == Usage(1, second.nbytes)
    assert await store.usage("alice") == Usage()


def test_embedded_store_contract(tmp_path: Path) -> None:
    async def run() -> None:
        store = EmbeddedStore(tmp_path / "k.sqlite3", max_delta_bytes=1 << 20)
        try:
            await _exercise(store)
        finally:
            await store.close()

    asyncio.run(run())


def test_embedded_store_facts_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "k.sqlite3"
    rec = record()

    async def write() -> None:
        store = EmbeddedStore(path, max_delta_bytes=1 << 20)
        await store.put_knowledge("alice", rec)
        await store.put_delta("alice", rec.knowledge_id, d(b"delta"), 60)
        await store.close()

    async def read() -> None:
        store = EmbeddedStore(path, max_delta_bytes=1 << 20)
        assert await store.get_knowledge("alice", rec.knowledge_id) == rec
        assert await store.get_delta("alice", rec.knowledge_id) is None  # deltas are memory only
        await store.close()

    asyncio.run(write())
    asyncio.run(read())


def test_redis_store_contract(redis_server: RedisProcess) -> None:
    async def run() -> None:
        store = RedisStore(redis_server.url, model=MODEL, prefix="unit")
        other = RedisStore(redis_server.url, model="cd" * 32, prefix="unit")  # another model version
        try:
            await _exercise(store)
            rec = record("r" * 64)
            await store.put_knowledge("alice", rec)
            await store.put_delta("alice", rec.knowledge_id, d(b"d", "mine"), 30)
            await other.put_delta("alice", rec.knowledge_id, d(b"e", "theirs"), 60)
            # Two model versions keep their own deltas (the fingerprint is in the key) ...
            assert await store.get_delta("alice", rec.knowledge_id) == d(b"d", "mine")
            assert await other.get_delta("alice", rec.knowledge_id) == d(b"e", "theirs")
            sync = redis_server.client()
            assert store.delta_key("alice", rec.knowledge_id) == f"unit:alice:delta:{MODEL[:16]}:{rec.knowledge_id}"
            assert sync.ttl(store.facts_key("alice", rec.knowledge_id)) == -1
            assert 0 < sync.ttl(store.delta_key("alice", rec.knowledge_id)) <= 30
            # ... and one DELETE removes every model's.
            assert await store.delete_knowledge("alice", rec.knowledge_id)
            assert [k for k in sync.keys("unit:alice:*") if not k.endswith(b":usage")] == []
        finally:
            await store.close()
            await other.close()

    asyncio.run(run())


def test_unreachable_redis_raises_store_unavailable_fast() -> None:
    async def run() -> None:
        store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", model=MODEL, timeout_s=0.5)
        for call in (
            store.ping(),
            store.get_knowledge("t", "x"),
            store.put_knowledge("t", record()),
            store.get_delta("t", "x"),
            store.put_delta("t", "x", d(b"d"), 1),
            store.delta_mac("t", "x"),
            store.usage("t"),
            store.delta_status("t", "x"),
            store.delete_knowledge("t", "x"),
        ):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await call
            assert time.monotonic() - started < 2.5
        await store.close()

    asyncio.run(run())


def test_redis_store_recovers_after_a_restart(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path / "redis")
    server.start()

    async def run() -> None:
        store = RedisStore(server.url, model=MODEL, timeout_s=0.5)
        rec = record()
        await store.put_knowledge("t", rec)
        server.kill()
        with pytest.raises(StoreUnavailable):
            await store.ping()
        server.start()
        await store.ping()  # the pool reconnects by itself
        assert await store.get_knowledge("t", rec.knowledge_id) == rec  # from the AOF
        await store.close()

    try:
        asyncio.run(run())
    finally:
        server.stop()


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
