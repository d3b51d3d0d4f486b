"""Injected faults: Redis down at start-up or killed mid-load, deltas deleted or corrupted, maxmemory, API SIGKILL."""

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from rel_support import (
    FAST_503_S,
    KEYS,
    PREFIX,
    LoadRunner,
    Report,
    Stack,
    check_answers,
    counted_async_client,
    facts_for,
)

from benchmarks.processes import ApiProcess, RedisProcess, metric
from reckoning_core.serialization import CHECKSUMS
from service.store.redis_store import redis_key
from tests.support import delta_header, plant_delta, stored_delta, with_header

REPO = Path(__file__).resolve().parents[2]
QUESTIONS = ["Anne is kind.", "Bob is big.", "If someone is kind then they are nice."]


def _tag(name: str) -> str:
    return f"{name}{time.monotonic_ns() % 10**9}"


def encode(client: httpx.Client, facts: list[str]) -> str:
    response = client.post("/encode", json={"facts": facts})
    assert response.status_code == 200, response.text
    knowledge_id: str = response.json()["knowledge_id"]
    return knowledge_id


def ask(client: httpx.Client, knowledge_id: str) -> list[dict[str, Any]]:
    response = client.post("/ask", json={"knowledge_id": knowledge_id, "questions": QUESTIONS})
    assert response.status_code == 200, response.text
    assert check_answers(response.json(), QUESTIONS) is None, response.text
    answers: list[dict[str, Any]] = response.json()["answers"]
    return answers


def same_answers(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    # A re-encode runs the same deterministic inner loop on the same facts: the answers must not move.
    return all(
        x["answer"] == y["answer"] and all(abs(x["scores"][k] - y["scores"][k]) < 1e-4 for k in x["scores"])
        for x, y in zip(a, b, strict=True)
    )


# ----------------------------------------------------------------------------- Redis SIGKILL


def test_redis_sigkill_mid_load_fails_fast_then_recovers_without_restarting_the_api(
    stack: Stack, report: Report
) -> None:
    pid = stack.api.pid
    # Test the shipped durability setting (docker/redis.conf: appendfsync everysec), not the harness's "always".
    stack.redis_client().config_set("appendfsync", "everysec")
    errors_before = report.errors_5xx
    probes: dict[str, tuple[int, float, str | None]] = {}
    timings: dict[str, float] = {}

    async def scenario() -> tuple[LoadRunner, int, list[str]]:
        runner = LoadRunner(report, stack.url, dict(KEYS), workers=6, tag="rkill", seed=3, tolerate_faults=True)
        stop = asyncio.Event()
        load = asyncio.create_task(runner.run(120, stop))
        await asyncio.sleep(3)
        async with counted_async_client(report, stack.url, KEYS["alice"]) as client:
            kid = runner.hot["alice"][0]
            with report.fault("redis_sigkill"):
                await asyncio.to_thread(stack.redis.kill)
                killed = time.monotonic()
                calls = {
                    "ask": lambda: client.post("/ask", json={"knowledge_id": kid, "question": "Bob is kind."}),
                    "encode": lambda: client.post("/encode", json={"facts": facts_for(_tag("outage"), 3)}),
                    "get": lambda: client.get(f"/knowledge/{kid}"),
                    "delete": lambda: client.delete(f"/knowledge/{kid}"),
                    "readyz": lambda: client.get("/readyz"),
                }
                for name, call in calls.items():
                    started = time.monotonic()
                    response = await call()
                    elapsed = time.monotonic() - started
                    probes[name] = (response.status_code, elapsed, response.headers.get("Retry-After"))
                await asyncio.sleep(2.0)  # the load keeps hitting the dead store meanwhile
                restarted = time.monotonic()
                await asyncio.to_thread(stack.redis.start)  # same port and directory: the AOF brings facts back
                while (await client.get("/readyz")).status_code != 200:
                    assert time.monotonic() - restarted < 15, "the API did not recover after Redis came back"
                    await asyncio.sleep(0.1)
                timings["outage_s"] = round(restarted - killed, 2)
                timings["recovery_s"] = round(time.monotonic() - restarted, 2)
            # Strictly after recovery: the delete refused during the outage must not have happened.
            after = await client.post("/ask", json={"knowledge_id": kid, "question": "Bob is kind."})
            assert after.status_code == 200, after.text
            await asyncio.sleep(3.0)  # load continues; any 5xx from here on is a failure
        stop.set()
        await load
        ok, lost = await runner.verify()
        return runner, ok, lost

    try:
        runner, ok, lost = asyncio.run(scenario())
    finally:
        if stack.redis.proc is None:  # never leave the shared stack without its Redis
            stack.redis.start()
    report.verified(ok, len(lost))
    result = runner.result
    report.sections["redis_sigkill"] = {
        **timings,
        "probes": {k: {"status": s, "seconds": round(t, 3)} for k, (s, t, _) in probes.items()},
        "tolerated_503": result.tolerated_503,
        "slowest_503_s": round(result.slowest_503_s, 3),
        "audit_503_retries": result.audit_503_retries,
        "knowledge_sets_verified": ok,
    }

    for name, (status, elapsed, retry_after) in probes.items():
        assert status == 503, (name, status)
        assert retry_after == "2", name
        assert elapsed < FAST_503_S, f"{name} took {elapsed:.2f}s with Redis down"
    assert result.tolerated_503 > 0, "the load never saw the outage: the fault was not injected mid-load"
    assert result.slowest_503_s < FAST_503_S
    assert not result.violations, result.violations[:10]
    assert report.errors_5xx == errors_before, "a 5xx outside the outage (or a 500 during it)"
    assert lost == [], lost[:10]
    assert ok >= 10
    assert stack.api.proc is not None and stack.api.proc.poll() is None and stack.api.pid == pid  # never restarted


def test_the_api_starts_while_redis_is_down_and_becomes_ready_when_it_comes_up(tmp_path: Path, tiny_gpt2: Path) -> None:
    redis_server = RedisProcess(tmp_path / "redis", config=REPO / "docker" / "redis.conf")
    api = ApiProcess(tmp_path / "api", {"RECKONING_MODEL_DIR": str(tiny_gpt2), "RECKONING_REDIS_URL": redis_server.url})
    try:
        api.start()  # inside the try: a start that times out must not leave its process behind
        with api.client() as client:
            response = client.get("/readyz")
            assert response.status_code == 503 and response.json()["status"] == "unavailable"
            assert "Retry-After" in response.headers
            redis_server.start()
            assert client.get("/readyz").status_code == 200
            assert client.post("/encode", json={"facts": facts_for(_tag("late"), 3)}).status_code == 200
    finally:
        api.stop()
        redis_server.stop()


# ----------------------------------------------------------------------------- deltas gone or damaged


def test_deltas_deleted_behind_the_servers_back_are_reencoded_once_and_counted(stack: Stack, report: Report) -> None:
    n_sets, concurrent = 5, 6
    rc = stack.redis_client()
    with stack.client("alice") as client:
        kids = [encode(client, facts_for(_tag(f"ddel{i}"), 6)) for i in range(n_sets)]
        before = {kid: ask(client, kid) for kid in kids}
        keys = [stack.delta_key("alice", kid) for kid in kids]
        assert rc.exists(*keys) == n_sets, "delta key layout changed: this test would delete nothing"
        reencodes = metric(client, "reckoning_reencodes_total")

        report.injected("delta_deleted_externally", n_sets)
        assert rc.delete(*keys) == n_sets

        async def ask_all() -> list[httpx.Response]:
            async with counted_async_client(report, stack.url, KEYS["alice"]) as aclient:
                calls = [
                    aclient.post("/ask", json={"knowledge_id": kid, "questions": QUESTIONS})
                    for kid in kids
                    for _ in range(concurrent)
                ]
                return await asyncio.gather(*calls)

        responses = asyncio.run(ask_all())
        assert [r.status_code for r in responses] == [200] * len(responses), [r.text for r in responses][:3]
        for i, response in enumerate(responses):
            assert same_answers(response.json()["answers"], before[kids[i // concurrent]])
        reencoded = metric(client, "reckoning_reencodes_total") - reencodes
        for kid in kids:
            info = client.get(f"/knowledge/{kid}").json()
            assert info["delta_cached"] is True and info["ttl_s"] is not None and info["ttl_s"] > 0
            # The rebuilt delta must carry a TTL again, or volatile-lru could never evict it.
            assert rc.ttl(stack.delta_key("alice", kid)) > 0
    report.sections["delta_deleted"] = {"sets": n_sets, "concurrent_asks_each": concurrent, "reencodes": reencoded}
    # Single-flight: one inner loop per set, not one per ask (2x leaves room for an ask that read the
    # miss just before another's re-encode finished; 6 concurrent asks per set would give 6x without it).
    assert n_sets <= reencoded <= 2 * n_sets


def _flip_payload(blob: bytes) -> bytes:
    header, payload = delta_header(blob)
    damaged = bytearray(payload)
    damaged[len(damaged) // 2] ^= 0x40
    return with_header(header, bytes(damaged))


def _bad_checksum(blob: bytes) -> bytes:
    header, payload = delta_header(blob)
    meta = header["__metadata__"]
    (algorithm,) = [a for a in CHECKSUMS if a in meta]  # the one checksum the blob carries
    meta[algorithm] = "0" * len(meta[algorithm])
    return with_header(header, payload)


def _other_fingerprint(blob: bytes) -> bytes:
    header, payload = delta_header(blob)
    header["__metadata__"]["fingerprint"] = "f" * 64
    return with_header(header, payload)


CORRUPTIONS = {
    "payload_bit_flip": _flip_payload,
    "checksum_overwritten": _bad_checksum,
    "truncated": lambda blob: blob[: len(blob) // 2],
    "random_bytes": lambda blob: os.urandom(len(blob)),
    "empty": lambda blob: b"",
    "not_safetensors": lambda blob: json.dumps({"delta": [1, 2, 3]}).encode(),
    "other_fingerprint_in_header": _other_fingerprint,
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corrupted_delta_is_detected_reencoded_and_counted(
    stack: Stack, replica: ApiProcess, report: Report, kind: str
) -> None:
    corrupt = CORRUPTIONS[kind]
    rc = stack.redis_client()
    with stack.client("alice") as client, stack.replica_client(replica) as cold:
        kid = encode(client, facts_for(_tag(kind), 5))
        before = ask(client, kid)
        key = stack.delta_key("alice", kid)
        blob, _ = stored_delta(rc, key)
        assert len(blob) > 1000
        reencodes = metric(cold, "reckoning_reencodes_total")
        rejected = metric(cold, "reckoning_delta_rejected_total", reason="ForgedDelta")

        report.injected(f"delta_corrupted:{kind}")
        plant_delta(rc, key, corrupt(blob))  # under the MAC that is there: damage cannot remake a MAC

        # The MAC over the blob, checked first, catches every kind of damage where the blob is loaded: here the
        # replica that never held this set (the one that encoded it keeps verified weights under that MAC).
        assert same_answers(ask(cold, kid), before)
        assert metric(cold, "reckoning_delta_rejected_total", reason="ForgedDelta") == rejected + 1
        assert metric(cold, "reckoning_reencodes_total") == reencodes + 1
        assert stored_delta(rc, key)[0] != corrupt(blob) and rc.ttl(key) > 0
        # The rebuilt delta replaced the damaged one: the next ask is a plain cache hit, on either replica.
        assert same_answers(ask(cold, kid), before)
        assert same_answers(ask(client, kid), before)
        assert metric(cold, "reckoning_reencodes_total") == reencodes + 1


# ----------------------------------------------------------------------------- memory pressure


def test_redis_maxmemory_pressure_evicts_deltas_never_facts(stack: Stack, report: Report) -> None:
    rc = stack.redis_client()
    assert rc.config_get("maxmemory-policy")["maxmemory-policy"] == "volatile-lru"
    original = str(rc.config_get("maxmemory")["maxmemory"])
    durable_before = {key for key in rc.scan_iter(count=1000) if rc.ttl(key) == -1}
    assert durable_before, "expected facts from earlier requests"
    evicted_before = int(rc.info("stats")["evicted_keys"])
    n_sets = 80  # ~68 KB of delta each: over 5 MB of new deltas into 2 MB of headroom forces evictions
    kids: list[str] = []
    report.injected("redis_maxmemory_pressure")
    rc.config_set("maxmemory", int(rc.info("memory")["used_memory"]) + 2 * 2**20)
    try:
        with stack.client("bob") as client:
            for i in range(n_sets):
                kids.append(encode(client, facts_for(_tag(f"mem{i}"), 6)))  # a 503 (OOM) here fails the test
            evicted = int(rc.info("stats")["evicted_keys"]) - evicted_before
            lost_durable = sorted(k.decode() for k in durable_before if not rc.exists(k))
            facts_ttl = {rc.ttl(stack.facts_key("bob", kid)) for kid in kids}
            assert all(client.get(f"/knowledge/{kid}").status_code == 200 for kid in kids)
            # Every knowledge set (any test's, any tenant's) whose delta was evicted is still answerable.
            gone = []
            for key in rc.scan_iter(match=redis_key(PREFIX, "*", "facts", "*"), count=1000):
                _, tenant, _, kid = key.decode().split(":")
                if tenant in KEYS and not rc.exists(stack.delta_key(tenant, kid)):
                    gone.append((tenant, kid))
            reencodes = metric(client, "reckoning_reencodes_total")
            rebuilt = 0
            for tenant, kid in gone[:40]:
                rebuilt += not rc.exists(stack.delta_key(tenant, kid))  # an earlier rebuild may have evicted it
                with stack.client(tenant) as owner:
                    ask(owner, kid)
            reencoded = metric(client, "reckoning_reencodes_total") - reencodes
    finally:
        rc.config_set("maxmemory", original)
    report.sections["maxmemory_pressure"] = {
        "sets": n_sets,
        "evicted_keys": evicted,
        "deltas_missing": len(gone),
        "asked_without_delta": rebuilt,
        "reencodes": reencoded,
    }
    assert evicted > 0 and gone, "no pressure: nothing was evicted"
    assert lost_durable == [], f"keys without TTL (facts) were evicted: {lost_durable[:5]}"
    assert facts_ttl == {-1}, "facts must never carry a TTL"
    assert reencoded == rebuilt  # each set asked without its delta was re-encoded exactly once


# ----------------------------------------------------------------------------- API SIGKILL, embedded store


def test_api_sigkill_on_the_embedded_store_keeps_every_acknowledged_fact(
    tmp_path: Path, tiny_gpt2: Path, report: Report
) -> None:
    api = ApiProcess(
        tmp_path / "api",
        {"RECKONING_MODEL_DIR": str(tiny_gpt2), "RECKONING_SQLITE_PATH": str(tmp_path / "data" / "k.sqlite3")},
    )
    try:
        api.start()  # inside the try: a start that times out must not leave its process behind

        async def scenario() -> tuple[LoadRunner, int, list[str]]:
            runner = LoadRunner(report, api.url, {"public": None}, workers=6, tag="ekill", seed=4, tolerate_faults=True)
            stop = asyncio.Event()
            load = asyncio.create_task(runner.run(120, stop))
            await asyncio.sleep(4)
            with report.fault("api_sigkill"):
                assert api.proc is not None
                api.proc.send_signal(signal.SIGKILL)  # mid-load: requests are in flight
                await asyncio.to_thread(api.proc.wait, 10)
                await asyncio.sleep(0.3)
                stop.set()
                await load
            api.proc = None
            await asyncio.to_thread(api.start)  # a new process on the same SQLite file (and port)
            ok, lost = await runner.verify()
            return runner, ok, lost

        runner, ok, lost = asyncio.run(scenario())
        with api.client() as client:
            # Deltas lived in the dead process's memory: every set asked in the audit was rebuilt once.
            reencodes = metric(client, "reckoning_reencodes_total")
    finally:
        api.stop()
    report.verified(ok, len(lost))
    report.sections["api_sigkill_embedded"] = {
        "knowledge_sets_verified": ok,
        "transport_errors": report.transport_errors,
        "reencodes_after_restart": reencodes,
    }
    assert not runner.result.violations, runner.result.violations[:10]
    assert lost == [], lost[:10]
    assert ok >= 10
    assert reencodes == ok
