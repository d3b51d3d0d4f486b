"""RedisStore on a real redis-server: the store contract, key layout, fast failure and recovery after a restart."""

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.processes import RedisProcess, free_port
from service.store import RedisStore, StoreUnavailable
from tests.support import exercise_store, sample_record, sd

REPO = Path(__file__).resolve().parents[2]
MODEL = "ab" * 32  # a model fingerprint: Redis keeps deltas per model


def test_redis_store_contract(redis_server: RedisProcess) -> None:
    async def run() -> None:
        store = RedisStore(redis_server.url, model=MODEL, prefix="unit")
        other = RedisStore(redis_server.url, model="cd" * 32, prefix="unit")  # another model version
        try:
            await exercise_store(store)
            rec = sample_record("r" * 64)
            await store.put_knowledge("alice", rec)
            await store.put_delta("alice", rec.knowledge_id, sd(b"d", "mine"), 30)
            await other.put_delta("alice", rec.knowledge_id, sd(b"e", "theirs"), 60)
            # Two model versions keep their own deltas (the fingerprint is in the key) ...
            assert await store.get_delta("alice", rec.knowledge_id) == sd(b"d", "mine")
            assert await other.get_delta("alice", rec.knowledge_id) == sd(b"e", "theirs")
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
            store.put_knowledge("t", sample_record()),
            store.get_delta("t", "x"),
            store.put_delta("t", "x", sd(b"d"), 1),
            store.delta_mac("t", "x"),
            store.knowledge_and_delta_mac("t", "x"),
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




def _lock_keys(server: RedisProcess) -> list[bytes]:
    return list(server.client().keys("*:lock:*"))


async def _acquire_seconds(store: RedisStore, knowledge_id: str) -> float:
    started = time.monotonic()
    async with store.flight_lock("t", knowledge_id):
        return time.monotonic() - started


def test_a_flight_lock_orphaned_by_a_redis_crash_frees_within_its_lease(tmp_path: Path) -> None:
    """A holder whose release fails because Redis is down leaves its lock in the AOF; after the restart another
    replica must not wait out a long TTL for an encode nobody is running (it once waited 60 s, past clients'
    timeouts)."""
    server = RedisProcess(tmp_path / "redis")  # appendfsync always: the lock is in the AOF when Redis dies
    server.start()
    lease = 1.5

    async def run() -> None:
        holder = RedisStore(server.url, model=MODEL, timeout_s=0.5, lock_ttl_s=lease, lock_wait_s=60)
        other = RedisStore(server.url, model=MODEL, timeout_s=0.5, lock_ttl_s=lease, lock_wait_s=60)
        async with holder.flight_lock("t", "k" * 64):
            assert len(_lock_keys(server)) == 1
            server.kill()  # the release below fails: Redis is gone
        server.start()
        assert len(_lock_keys(server)) == 1, "the race did not happen: the lock did not outlive the crash"
        waited = await asyncio.wait_for(_acquire_seconds(other, "k" * 64), timeout=lease * 4)
        assert waited <= lease + 0.5, waited
        await holder.close()
        await other.close()

    try:
        asyncio.run(run())
    finally:
        server.stop()


def test_the_holder_keeps_its_lease_while_its_encode_runs(redis_server: RedisProcess) -> None:
    """The lease is short, so the holder renews it: a waiter must not take the lock from a live, slow encode."""
    lease = 0.6

    async def run() -> None:
        holder = RedisStore(redis_server.url, model=MODEL, lock_ttl_s=lease, lock_wait_s=30, prefix="lease")
        other = RedisStore(redis_server.url, model=MODEL, lock_ttl_s=lease, lock_wait_s=30, prefix="lease")
        order: list[str] = []

        async def slow_encode() -> None:
            async with holder.flight_lock("t", "s" * 64):
                order.append("holder in")
                await asyncio.sleep(lease * 4)  # several leases long
                order.append("holder out")

        task = asyncio.create_task(slow_encode())
        await asyncio.sleep(0.1)
        waited = await _acquire_seconds(other, "s" * 64)
        order.append("other in")
        await task
        assert order == ["holder in", "holder out", "other in"], order
        assert waited >= lease * 3, waited
        await holder.close()
        await other.close()

    asyncio.run(run())


def test_a_lock_left_by_a_killed_replica_frees_within_its_lease(redis_server: RedisProcess) -> None:
    """A replica SIGKILLed mid-encode never releases its lock nor renews it."""
    lease = 1.0
    script = (
        "import asyncio, sys, time\n"
        "from service.store import RedisStore\n"
        "async def main():\n"
        f"    store = RedisStore({redis_server.url!r}, model={MODEL!r}, lock_ttl_s={lease}, prefix='dead')\n"
        "    async with store.flight_lock('t', 'd' * 64):\n"
        "        print('held', flush=True)\n"
        "        await asyncio.sleep(600)\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=REPO)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"held"
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()

    async def run() -> None:
        other = RedisStore(redis_server.url, model=MODEL, lock_ttl_s=lease, lock_wait_s=60, prefix="dead")
        waited = await asyncio.wait_for(_acquire_seconds(other, "d" * 64), timeout=lease * 4)
        assert waited <= lease + 0.5, waited
        await other.close()

    asyncio.run(run())


def test_rate_limits_are_counted_in_redis_so_replicas_share_them(redis_server: RedisProcess) -> None:
    from service.rate_limit import RateLimited, TenantRateLimits
    from service.settings import Settings

    settings = Settings(_env_file=None, redis_url=redis_server.url, secret_key="k" * 32,  # type: ignore[call-arg]
                        key_prefix=f"rl{time.monotonic_ns()}", rate_limit="3/minute", encode_rate_limit="none")

    async def run() -> None:
        first, second = TenantRateLimits(settings), TenantRateLimits(settings)  # two replicas
        await first.request("alice")
        await second.request("alice")
        await first.request("alice")
        with pytest.raises(RateLimited, match="rate_limit=3 per 1 minute") as limited:
            await second.request("alice")  # the fourth, whichever replica it reaches
        assert 1 <= limited.value.retry_after_s <= 60
        await second.request("bob")  # per tenant
        await first.encode("alice")  # "none": no encode limit

    asyncio.run(run())
    assert any(k.startswith(settings.key_prefix.encode()) for k in redis_server.client().keys("*"))
