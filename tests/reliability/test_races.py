"""Races a random mix rarely hits, each forced into its interleaving over real processes and checked to have
happened that way: identical concurrent encodes, a DELETE landing during a re-encode, and an encode joining
that re-encode after the DELETE.

The window: with one encode slot (the default), blocker encodes of 256 facts (~1 s each on the tiny model)
hold the torch worker, so an ask's re-encode waits, admitted, behind them. reckoning_encodes_in_flight (inner
loops admitted and not finished) shows it waiting before the DELETE is sent and still waiting once the DELETE
has been answered; that is the proof the DELETE landed mid-re-encode, not after it.
"""

import asyncio
import time

import httpx
from rel_support import KEYS, Report, Stack, counted_async_client, facts_for

from benchmarks.processes import metric, metric_value

BLOCKERS = 2


async def _in_flight(client: httpx.AsyncClient) -> float:
    return metric_value((await client.get("/metrics")).text, "reckoning_encodes_in_flight")


async def _until_in_flight(client: httpx.AsyncClient, at_least: float, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while await _in_flight(client) < at_least:
        assert time.monotonic() < deadline, f"fewer than {at_least} inner loops ever in flight"
        await asyncio.sleep(0.005)


def _blockers(client: httpx.AsyncClient, tag: str) -> list[asyncio.Task[httpx.Response]]:
    bodies = [{"facts": facts_for(f"{tag}b{i}x{time.monotonic_ns()}", 256)} for i in range(BLOCKERS)]
    return [asyncio.ensure_future(client.post("/encode", json=body)) for body in bodies]


def _ask(client: httpx.AsyncClient, kid: str) -> asyncio.Task[httpx.Response]:
    return asyncio.ensure_future(client.post("/ask", json={"knowledge_id": kid, "question": "Bob is kind."}))


def test_identical_concurrent_encodes_run_one_inner_loop(stack: Stack, report: Report) -> None:
    facts = facts_for(f"same{time.monotonic_ns()}", 8)
    with stack.client("alice") as client:
        loops = metric(client, "reckoning_encode_seconds_count")

        async def encode_many() -> list[httpx.Response]:
            async with counted_async_client(report, stack.url, KEYS["alice"]) as aclient:
                return await asyncio.gather(*(aclient.post("/encode", json={"facts": facts[::-1]}) for _ in range(12)))

        responses = asyncio.run(encode_many())
        ran = metric(client, "reckoning_encode_seconds_count") - loops
    assert [r.status_code for r in responses] == [200] * 12
    assert len({r.json()["knowledge_id"] for r in responses}) == 1
    assert [r.json()["cached"] for r in responses].count(False) == 1  # exactly one caller ran the loop
    assert ran == 1


def test_a_delete_during_a_reencode_leaves_no_delta_behind(stack: Stack, report: Report) -> None:
    """DELETE must forget the knowledge in weight form too, even when an ask is rebuilding its delta right then."""
    rc = stack.redis_client()
    rounds, orphans, statuses = 3, [], []
    for i in range(rounds):

        async def race(i: int = i) -> tuple[str, int, int]:
            async with counted_async_client(report, stack.url, KEYS["alice"]) as client:
                facts = facts_for(f"race{i}x{time.monotonic_ns()}", 12)
                kid = (await client.post("/encode", json={"facts": facts})).json()["knowledge_id"]
                assert rc.delete(stack.delta_key("alice", kid)) == 1  # the next ask must re-encode
                report.injected("delete_during_reencode")
                base = await _in_flight(client)
                blockers = _blockers(client, f"race{i}")
                await _until_in_flight(client, base + BLOCKERS)
                asking = _ask(client, kid)
                await _until_in_flight(client, base + BLOCKERS + 1)  # the ask's re-encode is admitted, waiting
                deleted = await client.delete(f"/knowledge/{kid}")
                still_running = await _in_flight(client) >= base + 1 and not asking.done()
                assert still_running, "the re-encode finished before the DELETE was answered: race not exercised"
                asked = await asking
                assert all(b.status_code == 200 for b in await asyncio.gather(*blockers))
                return kid, asked.status_code, deleted.status_code

        kid, asked, deleted = asyncio.run(race())
        statuses.append((asked, deleted))
        if rc.exists(stack.delta_key("alice", kid)) or rc.exists(stack.facts_key("alice", kid)):
            orphans.append(kid[:12])
        with stack.client("alice") as client:
            assert client.get(f"/knowledge/{kid}").status_code == 404
    report.sections["delete_during_reencode"] = {
        "rounds": rounds,
        "proven_mid_reencode": rounds,  # each round asserts the re-encode was still running when the DELETE returned
        "left_behind": len(orphans),
    }
    assert all(a == 200 and d == 204 for a, d in statuses), statuses  # the ask began before the DELETE: answered
    assert orphans == [], f"deleted knowledge still stored in Redis after 204: {orphans}"


def test_an_encode_joining_a_reencode_across_a_delete_keeps_its_facts(stack: Stack, report: Report) -> None:
    """Issue 13.1 over real processes: an ask re-encodes X, a DELETE of X lands, the same facts are encoded again
    and join that re-encode. The encode answers 200, so X must be stored afterwards."""
    facts = facts_for(f"join{time.monotonic_ns()}", 10)

    async def race() -> tuple[str, httpx.Response, float]:
        async with counted_async_client(report, stack.url, KEYS["alice"]) as client:
            kid = (await client.post("/encode", json={"facts": facts})).json()["knowledge_id"]
            stack.redis_client().delete(stack.delta_key("alice", kid))
            report.injected("encode_joins_reencode_across_delete")
            loops = metric_value((await client.get("/metrics")).text, "reckoning_encode_seconds_count")
            base = await _in_flight(client)
            blockers = _blockers(client, "join")
            await _until_in_flight(client, base + BLOCKERS)
            asking = _ask(client, kid)
            await _until_in_flight(client, base + BLOCKERS + 1)
            assert (await client.delete(f"/knowledge/{kid}")).status_code == 204
            assert not asking.done() and await _in_flight(client) >= base + 1, "re-encode over before the DELETE"
            encoded = await client.post("/encode", json={"facts": facts[::-1]})
            assert (await asking).status_code == 200
            assert all(b.status_code == 200 for b in await asyncio.gather(*blockers))
            ran = metric_value((await client.get("/metrics")).text, "reckoning_encode_seconds_count") - loops
            return kid, encoded, ran

    kid, encoded, ran = asyncio.run(race())
    assert encoded.status_code == 200 and encoded.json()["knowledge_id"] == kid
    # It joined the re-encode (proof the race happened): it ran no inner loop of its own.
    assert encoded.json()["cached"] is True and ran == BLOCKERS + 1
    with stack.client("alice") as client:
        info = client.get(f"/knowledge/{kid}", params={"include_facts": "true"})
        assert info.status_code == 200, "an encode answered 200 and its facts are gone"
        assert info.json()["facts"] == sorted(facts) and info.json()["delta_cached"] is True
        assert client.post("/ask", json={"knowledge_id": kid, "question": "Bob is kind."}).status_code == 200
