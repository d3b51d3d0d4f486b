"""A Redis that refuses work (full with noeviction, unable to persist, an ACL without the commands we need) is a
503 with Retry-After and a message saying which, never a 500; reads and DELETEs keep working where Redis allows."""

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import api_env
from rel_support import KEYS, Report, counted_client, facts_for

from benchmarks.processes import ApiProcess, RedisProcess


@pytest.fixture(scope="module")
def full_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    # What the issue names: a 2 MB Redis that may evict nothing.
    server = RedisProcess(
        tmp_path_factory.mktemp("redis-2mb"),
        args=["--maxmemory", "2mb", "--maxmemory-policy", "noeviction", "--appendonly", "no"],
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api(full_redis: RedisProcess, tmp_path_factory: pytest.TempPathFactory, tiny_gpt2: Path) -> Iterator[ApiProcess]:
    process = ApiProcess(tmp_path_factory.mktemp("api-2mb"), api_env(tiny_gpt2, full_redis.url), keys=KEYS)
    try:
        process.start()
        yield process
    finally:
        process.stop()


@pytest.fixture
def alice(api: ApiProcess, report: Report) -> Iterator[httpx.Client]:
    with counted_client(report, api.url, KEYS["alice"]) as client:
        yield client


def refused(response: httpx.Response, says: str) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:300])
    assert response.headers.get("Retry-After") == "2"
    assert says in response.json()["detail"], response.json()


def test_a_full_redis_is_a_503_saying_out_of_memory(
    alice: httpx.Client, full_redis: RedisProcess, report: Report
) -> None:
    kept: list[str] = []
    with report.fault("redis_oom"):
        for i in range(200):  # ~70 KB of delta per set: 2 MB is full after ~25
            response = alice.post("/encode", json={"facts": facts_for(f"oom{i}x{time.monotonic_ns()}", 4)})
            if response.status_code != 200:
                break
            kept.append(response.json()["knowledge_id"])
        else:
            pytest.fail("2 MB of Redis never filled up")
        refused(response, "redis is out of memory")
        assert kept, "not one set fitted"
        assert alice.get(f"/knowledge/{kept[0]}").status_code == 200  # reads still work
        asked = alice.post("/ask", json={"knowledge_id": kept[-1], "question": "Bob is kind."})
        assert asked.status_code in (200, 503), asked.text  # 503 only if its delta must be rebuilt and stored
        if asked.status_code == 503:
            refused(asked, "out of memory")
        for kid in kept:  # deleting is how a tenant frees memory: allowed even when full
            assert alice.delete(f"/knowledge/{kid}").status_code == 204
    assert alice.post("/encode", json={"facts": facts_for(f"after{time.monotonic_ns()}", 4)}).status_code == 200
    full_redis.client().flushall()


def test_redis_unable_to_persist_is_a_503_saying_misconf(
    alice: httpx.Client, full_redis: RedisProcess, report: Report
) -> None:
    rc = full_redis.client()
    kid = alice.post("/encode", json={"facts": facts_for(f"misconf{time.monotonic_ns()}", 3)}).json()["knowledge_id"]
    blocker = full_redis.workdir / "dump.rdb"  # a directory where the snapshot goes: BGSAVE cannot finish
    blocker.mkdir(exist_ok=True)
    (blocker / "x").write_text("x")
    with report.fault("redis_misconf"):
        try:
            rc.config_set("save", "3600 1")  # snapshots on, with stop-writes-on-bgsave-error (the default)
            rc.bgsave()
            deadline = time.monotonic() + 15
            while rc.info("persistence")["rdb_last_bgsave_status"] != "err":
                assert time.monotonic() < deadline, "BGSAVE never failed"
                time.sleep(0.05)
            refused(alice.post("/encode", json={"facts": facts_for(f"mc{time.monotonic_ns()}", 3)}), "MISCONF")
            refused(alice.delete(f"/knowledge/{kid}"), "MISCONF")  # Redis refuses even deletes now
            assert alice.get(f"/knowledge/{kid}").status_code == 200  # reads still work
        finally:
            rc.config_set("save", "")
    assert alice.delete(f"/knowledge/{kid}").status_code == 204


def test_an_acl_without_write_commands_is_a_503_saying_noperm(
    alice: httpx.Client, full_redis: RedisProcess, report: Report
) -> None:
    admin = full_redis.client()
    admin.acl_setuser("admin", enabled=True, passwords=["+admin-pass"], keys=["*"], channels=["*"], commands=["+@all"])
    restore = full_redis.client()
    restore.execute_command("AUTH", "admin", "admin-pass")
    kid = alice.post("/encode", json={"facts": facts_for(f"acl{time.monotonic_ns()}", 3)}).json()["knowledge_id"]
    with report.fault("redis_noperm"):
        try:
            admin.acl_setuser("default", commands=["-@write", "-@scripting"])
            refused(alice.post("/encode", json={"facts": facts_for(f"np{time.monotonic_ns()}", 3)}), "NOPERM")
            refused(alice.delete(f"/knowledge/{kid}"), "NOPERM")
            assert alice.get(f"/knowledge/{kid}").status_code == 200
        finally:
            restore.acl_setuser("default", commands=["+@all"])
    assert alice.delete(f"/knowledge/{kid}").status_code == 204
    report.sections["redis_refusals"] = {
        "server": "redis-server --maxmemory 2mb --maxmemory-policy noeviction",
        "refusals": ["OutOfMemoryError", "MISCONF", "NOPERM"],
        "status": 503,
    }
