"""Races a random mix rarely hits: identical concurrent encodes, and a delete landing during a re-encode."""

import asyncio
import time

import httpx
from rel_support import KEYS, Report, Stack, counted_async_client, facts_for

from benchmarks.processes import metric


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
    rounds, orphans, statuses = 8, [], []
    with stack.client("alice") as client:
        for i in range(rounds):
            kid = client.post("/encode", json={"facts": facts_for(f"race{i}x{time.monotonic_ns()}", 12)}).json()[
                "knowledge_id"
            ]
            assert rc.delete(stack.delta_key("alice", kid)) == 1  # the next ask must re-encode
            report.injected("delete_during_reencode")

            async def ask_and_delete(kid: str = kid, delay: float = 0.002 * i) -> tuple[int, int]:
                async with counted_async_client(report, stack.url, KEYS["alice"]) as aclient:
                    ask = asyncio.create_task(
                        aclient.post("/ask", json={"knowledge_id": kid, "question": "Bob is kind."})
                    )
                    await asyncio.sleep(delay)  # let the ask reach its re-encode before the delete lands
                    deleted = await aclient.delete(f"/knowledge/{kid}")
                    return (await ask).status_code, deleted.status_code

            asked, deleted = asyncio.run(ask_and_delete())
            statuses.append((asked, deleted))
            if rc.exists(stack.delta_key("alice", kid)) or rc.exists(stack.facts_key("alice", kid)):
                orphans.append(kid[:12])
            assert client.get(f"/knowledge/{kid}").status_code == 404
    report.sections["delete_during_reencode"] = {"rounds": rounds, "left_behind": len(orphans)}
    assert all(a in {200, 404} and d == 204 for a, d in statuses), statuses
    assert any(a == 200 for a, _ in statuses), "no ask was mid-re-encode when its delete landed: race not exercised"
    assert orphans == [], f"deleted knowledge still stored in Redis after 204: {orphans}"
