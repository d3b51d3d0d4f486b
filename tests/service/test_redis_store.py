"""RedisStore on a real redis-server: the store contract, key layout, fast failure and recovery after a restart."""

import asyncio
import time
from pathlib import Path

import pytest

from benchmarks.processes import RedisProcess, free_port
from service.store import RedisStore, StoreUnavailable
from tests.support import exercise_store, sample_record


def test_redis_store_contract(redis_server: RedisProcess) -> None:
    async def run() -> None:
        store = RedisStore(redis_server.url, prefix="unit")
        try:
            await exercise_store(store)
            rec = sample_record("r" * 64)
            await store.put_knowledge("alice", rec)
            await store.put_delta("alice", rec.knowledge_id, b"d", 30)
            sync = redis_server.client()
            assert sync.ttl(store.facts_key("alice", rec.knowledge_id)) == -1
            assert 0 < sync.ttl(store.delta_key("alice", rec.knowledge_id)) <= 30
            await store.delete_knowledge("alice", rec.knowledge_id)
        finally:
            await store.close()

    asyncio.run(run())


def test_unreachable_redis_raises_store_unavailable_fast() -> None:
    async def run() -> None:
        store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
        for call in (
            store.ping(),
            store.get_knowledge("t", "x"),
            store.put_knowledge("t", sample_record()),
            store.get_delta("t", "x"),
            store.put_delta("t", "x", b"d", 1),
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
        store = RedisStore(server.url, timeout_s=0.5)
        rec = sample_record()
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


