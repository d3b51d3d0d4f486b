"""Two API processes on one redis-server behave as one under a mixed load of encodes, asks, deletes and evictions:
nothing lost, no 5xx, and an evicted delta is re-encoded at most once, not once per replica."""

import asyncio
import threading
import time

import httpx
from rel_support import KEYS, LoadRunner, Report, Stack, check_answers, counted_async_client, facts_for

from benchmarks.processes import ApiProcess, metric

STORM_SETS = 12
STORM_ASKS_PER_REPLICA = 3


class EvictionCounter:
    """Counts delta keys Redis evicts (keyspace notifications), from a thread of its own."""

    def __init__(self, stack: Stack) -> None:
        self.client = stack.redis_client()
        self.client.config_set("notify-keyspace-events", "Ee")
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe("__keyevent@0__:evicted")
        self.deltas = 0
        self.other = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message and message["type"] == "message":
                if b":delta:" in message["data"]:
                    self.deltas += 1
                else:
                    self.other += 1

    def stop(self) -> None:
        time.sleep(0.5)  # the last notifications in transit
        self._stop.set()
        self._thread.join(5)
        self.pubsub.close()
        self.client.config_set("notify-keyspace-events", "")


def test_two_replicas_on_one_redis_lose_nothing_never_5xx_and_reencode_at_most_once_per_eviction(
    stack: Stack, replica: ApiProcess, report: Report, soak: float
) -> None:
    seconds = max(20.0, soak / 4)
    urls = [stack.url, replica.url]
    rc = stack.redis_client()
    original_maxmemory = rc.config_get("maxmemory")["maxmemory"]
    errors_before = report.errors_5xx
    def totals() -> dict[str, float]:
        out = {"reencodes": 0.0, "shared": 0.0}
        for url in urls:
            with httpx.Client(base_url=url, timeout=30) as client:
                out["reencodes"] += metric(client, "reckoning_reencodes_total")
                out["shared"] += metric(client, "reckoning_flights_shared_across_processes_total")
        return out

    async def storms(stop: asyncio.Event, violations: list[str]) -> int:
        """Delete the delta of a set behind both replicas' backs, then ask it from both at once, again and again."""
        injected = 0
        async with counted_async_client(report, urls[0], KEYS["bob"]) as first, counted_async_client(
            report, urls[1], KEYS["bob"]
        ) as second:
            kids = []
            for i in range(STORM_SETS):
                response = await first.post("/encode", json={"facts": facts_for(f"storm{i}x{time.monotonic_ns()}", 6)})
                kids.append(response.json()["knowledge_id"])
            i = 0
            while not stop.is_set():
                kid = kids[i % len(kids)]
                i += 1
                injected += rc.delete(stack.delta_key("bob", kid))
                body = {"knowledge_id": kid, "question": "Bob is kind."}
                asks = [c.post("/ask", json=body) for c in (first, second) for _ in range(STORM_ASKS_PER_REPLICA)]
                for response in await asyncio.gather(*asks):
                    if response.status_code != 200 or check_answers(response.json(), ["Bob is kind."]):
                        violations.append(f"storm ask: {response.status_code} {response.text[:200]}")
                await asyncio.sleep(0.2)
        return injected

    async def scenario() -> tuple[list[LoadRunner], int, list[str], int, list[str]]:
        runners = [
            LoadRunner(report, url, dict(KEYS), workers=4, tag=f"rep{n}", seed=10 + n) for n, url in enumerate(urls)
        ]
        stop = asyncio.Event()
        violations: list[str] = []
        storm = asyncio.ensure_future(storms(stop, violations))
        loads = [asyncio.ensure_future(r.run(seconds)) for r in runners]
        await asyncio.gather(*loads)
        stop.set()
        injected = await storm
        ok, lost = 0, []
        for n, runner in enumerate(runners):  # each replica audits what the other one created
            good, missing = await runner.verify(urls[1 - n])
            ok += good
            lost += missing
        return runners, ok, lost, injected, violations

    before = totals()
    # Memory pressure: a few MB over what is used now, so deltas are evicted (volatile-lru) while the load runs.
    rc.config_set("maxmemory", int(rc.info("memory")["used_memory"]) + 6 * 2**20)
    evictions = EvictionCounter(stack)
    try:
        runners, ok, lost, injected, violations = asyncio.run(scenario())
    finally:
        evictions.stop()
        rc.config_set("maxmemory", original_maxmemory)
    after = totals()
    counted = {k: after[k] - before[k] for k in after}
    report.verified(ok, len(lost))
    requests = sum(sum(r.result.ops.values()) for r in runners)
    all_violations = [v for r in runners for v in r.result.violations] + violations
    report.sections["replicas"] = {
        "processes": len(urls),
        "seconds": seconds,
        "requests": requests,
        "knowledge_sets_verified_across_replicas": ok,
        "lost": len(lost),
        "errors_5xx": report.errors_5xx - errors_before,
        "violations": len(all_violations),
        "evictions": {
            "redis_evicted_deltas": evictions.deltas,
            "deleted_behind_the_servers": injected,
            "total": evictions.deltas + injected,
        },
        "reencodes": int(counted["reencodes"]),
        "flights_shared_across_processes": int(counted["shared"]),
    }
    assert not all_violations, all_violations[:10]
    assert lost == [], lost[:10]
    assert report.errors_5xx == errors_before
    assert ok >= 20 and injected >= 5
    assert counted["reencodes"] <= evictions.deltas + injected, report.sections["replicas"]
    assert counted["shared"] > 0, "no re-encode was ever shared across the replicas: the storm never raced"
