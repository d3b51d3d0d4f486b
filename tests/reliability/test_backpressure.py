"""Bounded work per server: a full encode queue is a 429 with Retry-After (never a 5xx or an unbounded queue),
and a client that disconnects leaves no queued work behind, except a re-encode that others still wait for."""

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import api_env
from rel_support import KEYS, Report, Stack, counted_async_client, facts_for

from benchmarks.processes import ApiProcess, metric_value

PENDING = 8


@pytest.fixture(scope="module")
def bounded(stack: Stack, tmp_path_factory: pytest.TempPathFactory, tiny_gpt2: Path) -> Iterator[ApiProcess]:
    env = api_env(tiny_gpt2, stack.redis.url, RECKONING_MAX_PENDING_ENCODES=str(PENDING))
    api = ApiProcess(tmp_path_factory.mktemp("api-bounded"), env, keys=KEYS)
    try:
        api.start()
        yield api
    finally:
        api.stop()


async def _metric(client: httpx.AsyncClient, name: str) -> float:
    return metric_value((await client.get("/metrics")).text, name)


def test_64_concurrent_encodes_over_8_pending_get_only_200s_and_429s(bounded: ApiProcess, report: Report) -> None:
    sets = [facts_for(f"bp{i}x{time.monotonic_ns()}", 24) for i in range(64)]

    async def scenario() -> tuple[list[httpx.Response], list[httpx.Response], float]:
        async with counted_async_client(report, bounded.url, KEYS["alice"], timeout=120) as client:
            first = await asyncio.gather(*(client.post("/encode", json={"facts": facts}) for facts in sets))
            # A client that honours Retry-After gets every one of them encoded in the end.
            retried: list[httpx.Response] = []
            todo = [facts for facts, r in zip(sets, first, strict=True) if r.status_code == 429]
            while todo:
                await asyncio.sleep(min(float(r.headers["Retry-After"]) for r in first if r.status_code == 429))
                again = await asyncio.gather(*(client.post("/encode", json={"facts": facts}) for facts in todo))
                retried += again
                todo = [facts for facts, r in zip(todo, again, strict=True) if r.status_code == 429]
            return first, retried, await _metric(client, "reckoning_encodes_in_flight")

    first, retried, in_flight = asyncio.run(scenario())
    statuses = [r.status_code for r in first]
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(429) > 0 and statuses.count(200) >= PENDING
    for response in (r for r in first if r.status_code == 429):
        assert int(response.headers["Retry-After"]) >= 1
        assert f"max_pending_encodes={PENDING}" in response.json()["detail"]
    assert all(r.status_code in (200, 429) for r in retried)
    assert in_flight == 0
    report.sections["backpressure"] = {
        "max_pending_encodes": PENDING,
        "concurrent_encodes": len(sets),
        "first_try": {"200": statuses.count(200), "429": statuses.count(429)},
        "retries_until_all_encoded": len(retried),
    }


def _blockers(client: httpx.AsyncClient, tag: str, n: int = 2) -> list[asyncio.Task[httpx.Response]]:
    """Encodes of 256 facts (~1 s each on the tiny model) that hold the single encode slot."""
    bodies = [{"facts": facts_for(f"{tag}{i}x{time.monotonic_ns()}", 256)} for i in range(n)]
    return [asyncio.ensure_future(client.post("/encode", json=body, timeout=120)) for body in bodies]


async def _until(client: httpx.AsyncClient, name: str, predicate: object, timeout_s: float = 30.0) -> float:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await _metric(client, name)
        if predicate(value):  # type: ignore[operator]
            return value
        assert time.monotonic() < deadline, f"{name} stayed at {value}"
        await asyncio.sleep(0.01)


def test_a_disconnected_client_leaves_no_queued_encode_behind(stack: Stack, report: Report) -> None:
    async def scenario() -> tuple[float, float]:
        async with counted_async_client(report, stack.url, KEYS["alice"]) as client:
            base = await _metric(client, "reckoning_encodes_in_flight")
            loops = await _metric(client, "reckoning_encode_seconds_count")
            cancelled = await _metric(client, "reckoning_encodes_cancelled_total")
            blockers = _blockers(client, "dc")
            await _until(client, "reckoning_encodes_in_flight", lambda v: v >= base + 2)
            report.injected("client_disconnects", 5)

            async def impatient(i: int) -> None:
                with pytest.raises(httpx.ReadTimeout):
                    await client.post("/encode", json={"facts": facts_for(f"gone{i}x{time.monotonic_ns()}", 6)},
                                      timeout=httpx.Timeout(30, read=0.5))  # fmt: skip

            await asyncio.gather(*(impatient(i) for i in range(5)))
            # Their inner loops were admitted behind the blockers; once their clients left they were dropped
            # while the blockers still ran: in flight falls back to the blockers alone.
            await _until(client, "reckoning_encodes_cancelled_total", lambda v: v >= cancelled + 5)
            assert not all(b.done() for b in blockers), "the blockers finished first: nothing was queued"
            assert await _metric(client, "reckoning_encodes_in_flight") <= base + 2
            assert all(b.status_code == 200 for b in await asyncio.gather(*blockers))
            await asyncio.sleep(0.5)
            return (await _metric(client, "reckoning_encode_seconds_count") - loops,
                    await _metric(client, "reckoning_encodes_cancelled_total") - cancelled)  # fmt: skip

    ran, dropped = asyncio.run(scenario())
    assert ran == 2  # the two blockers, and none of the five abandoned encodes
    assert dropped == 5
    report.sections["client_disconnects"] = {"abandoned_encodes": 5, "inner_loops_run_for_them": int(ran - 2)}


def test_a_shared_reencode_survives_one_of_its_waiters_leaving(stack: Stack, report: Report) -> None:
    rc = stack.redis_client()

    async def scenario() -> tuple[int, float, float]:
        async with counted_async_client(report, stack.url, KEYS["alice"]) as client:
            kid = (await client.post("/encode", json={"facts": facts_for(f"shared{time.monotonic_ns()}", 8)})).json()[
                "knowledge_id"
            ]
            rc.delete(stack.delta_key("alice", kid))
            reencodes = await _metric(client, "reckoning_reencodes_total")
            cancelled = await _metric(client, "reckoning_encodes_cancelled_total")
            base = await _metric(client, "reckoning_encodes_in_flight")
            blockers = _blockers(client, "sh")
            await _until(client, "reckoning_encodes_in_flight", lambda v: v >= base + 2)
            body = {"knowledge_id": kid, "question": "Bob is kind."}
            patient = asyncio.ensure_future(client.post("/ask", json=body, timeout=120))
            await _until(client, "reckoning_encodes_in_flight", lambda v: v >= base + 3)  # its re-encode waits
            with pytest.raises(httpx.ReadTimeout):
                await client.post("/ask", json=body, timeout=httpx.Timeout(30, read=0.3))  # joins it, then leaves
            answered = await patient
            await asyncio.gather(*blockers)
            return (answered.status_code, await _metric(client, "reckoning_reencodes_total") - reencodes,
                    await _metric(client, "reckoning_encodes_cancelled_total") - cancelled)  # fmt: skip

    status, reencoded, dropped = asyncio.run(scenario())
    assert status == 200 and reencoded == 1 and dropped == 0

