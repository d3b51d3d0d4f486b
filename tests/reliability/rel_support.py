"""Shared pieces of the reliability suite: the report tally, counted HTTP clients, server RSS, the load ledger."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from redis import Redis

from benchmarks.processes import ApiProcess, RedisProcess
from service.store.redis_store import model_key, redis_key

KEYS = {"alice": "alice-reliability-key-0001", "bob": "bob-reliability-key-0002"}
PREFIX = "reckoning"  # the stack runs with the default RECKONING_KEY_PREFIX
LABELS = {"True", "False", "Unknown"}  # the tiny checkpoint declares the ProofWriter label set
AUDIT_RETRY_S = 30.0  # how long the end-of-run audit keeps retrying a 503 before calling it a failure
FAST_503_S = 4.0  # an unreachable store must be reported within this many seconds


# ----------------------------------------------------------------------------- the report


@dataclass
class Report:
    """Everything results/reliability.json says; every counted client feeds it."""

    started: float = field(default_factory=time.monotonic)
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0  # connection refused/reset (only ever during an injected API kill)
    errors_5xx: int = 0  # 5xx not explained by an injected fault (must stay 0)
    expected_503: int = 0  # 503 answered while an injected store fault was in effect
    faults: Counter[str] = field(default_factory=Counter)
    knowledge_sets_verified: int = 0
    lost: int = 0
    rejected_forgeries: int = 0  # planted deltas and records the service refused (tests/reliability/test_security)
    sections: dict[str, Any] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)
    modules: set[str] = field(default_factory=set)
    _windows: list[tuple[float, float]] = field(default_factory=list)
    _open: dict[int, float] = field(default_factory=dict)
    _tokens: Iterator[int] = field(default_factory=itertools.count)

    # --- fault windows: a 503 whose request overlaps one was asked for, anything else is a failure

    @contextmanager
    def fault(self, kind: str, count: int = 1) -> Iterator[None]:
        self.faults[kind] += count
        token = next(self._tokens)
        self._open[token] = time.monotonic()
        try:
            yield
        finally:
            self._windows.append((self._open.pop(token), time.monotonic()))

    def injected(self, kind: str, count: int = 1) -> None:
        """A fault that must not cost a single 5xx (so no window excuses one)."""
        self.faults[kind] += count

    def _in_fault(self, started: float, ended: float) -> bool:
        windows = [*self._windows, *((start, math.inf) for start in self._open.values())]
        return any(started <= end and ended >= start for start, end in windows)

    def record(self, status: int, started: float, ended: float) -> None:
        self.statuses[status] += 1
        if status == 503 and self._in_fault(started, ended):
            self.expected_503 += 1
        elif status >= 500:
            self.errors_5xx += 1

    def record_transport_error(self) -> None:
        self.transport_errors += 1

    def verified(self, ok: int, lost: int) -> None:
        self.knowledge_sets_verified += ok
        self.lost += lost

    # --- output

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def as_dict(self, *, soak_seconds: float) -> dict[str, Any]:
        return {
            "schema": "reckoning-reliability/1",
            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "ok": not (self.outcomes["failed"] or self.errors_5xx or self.lost) and bool(self.outcomes["passed"]),
            "mode": "soak" if soak_seconds > 60 else "ci",
            "soak_seconds": soak_seconds,
            "duration_s": round(time.monotonic() - self.started, 1),
            "requests": self.requests,
            "errors_5xx": self.errors_5xx,
            "errors_4xx": sum(n for s, n in self.statuses.items() if 400 <= s < 500),
            "expected_503_during_faults": self.expected_503,
            "transport_errors": self.transport_errors,  # connection refused/reset: only tolerated during the API kill
            "faults_injected": sum(self.faults.values()),
            "faults": dict(sorted(self.faults.items())),
            "knowledge_sets_verified": self.knowledge_sets_verified,
            "lost": self.lost,
            "rejected_forgeries": self.rejected_forgeries,
            "status_429": self.statuses[429],
            "status_counts": {str(k): v for k, v in sorted(self.statuses.items())},
            "tests": dict(sorted(self.outcomes.items())),
            "test_modules": sorted(self.modules),
            **self.sections,
        }

    def write(self, path: Path, *, soak_seconds: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(soak_seconds=soak_seconds), indent=2) + "\n")


@dataclass
class Stack:
    """redis-server (the compose config file) + the API with two tenants, on free ports."""

    redis: RedisProcess
    api: ApiProcess
    report: Report
    model: str = ""  # the served model's fingerprint: deltas are kept per model

    @property
    def url(self) -> str:
        return self.api.url

    def client(self, tenant: str | None = "alice", timeout: float = 30.0) -> httpx.Client:
        return counted_client(self.report, self.api.url, KEYS[tenant] if tenant else None, timeout)

    def redis_client(self) -> Redis:
        return self.redis.client()

    def delta_key(self, tenant: str, knowledge_id: str) -> str:
        """This model's delta of a set: a hash {mac, blob} with a TTL."""
        return model_key(PREFIX, tenant, "delta", self.model, knowledge_id)

    def replica_client(self, replica: ApiProcess, tenant: str = "alice", timeout: float = 30.0) -> httpx.Client:
        return counted_client(self.report, replica.url, KEYS[tenant], timeout)

    def facts_key(self, tenant: str, knowledge_id: str) -> str:
        return redis_key(PREFIX, tenant, "facts", knowledge_id)


# ----------------------------------------------------------------------------- counted clients


def _sync_hooks(report: Report) -> dict[str, list[Any]]:
    def on_request(request: httpx.Request) -> None:
        request.extensions["rel_started"] = time.monotonic()

    def on_response(response: httpx.Response) -> None:
        report.record(response.status_code, response.request.extensions["rel_started"], time.monotonic())

    return {"request": [on_request], "response": [on_response]}


def _async_hooks(report: Report) -> dict[str, list[Any]]:
    async def on_request(request: httpx.Request) -> None:
        request.extensions["rel_started"] = time.monotonic()

    async def on_response(response: httpx.Response) -> None:
        report.record(response.status_code, response.request.extensions["rel_started"], time.monotonic())

    return {"request": [on_request], "response": [on_response]}


def _headers(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def counted_client(report: Report, base_url: str, key: str | None = None, timeout: float = 30.0) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers=_headers(key), timeout=timeout, event_hooks=_sync_hooks(report))


def counted_async_client(
    report: Report, base_url: str, key: str | None = None, timeout: float = 30.0
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url, headers=_headers(key), timeout=timeout, event_hooks=_async_hooks(report)
    )


# ----------------------------------------------------------------------------- knowledge fixtures


def facts_for(tag: str, n: int) -> list[str]:
    """Distinct, already-normalised facts (so the server's normalised copy equals sorted(facts))."""
    names = ["Anne", "Bob", "Carol", "Dave", "Erin", "Fred", "Gary", "Harry"]
    adjectives = ["kind", "big", "red", "young", "round", "nice", "cold", "quiet"]
    rows = [f"{names[i % 8]} {tag} is {adjectives[(i * 3) % 8]} {i}." for i in range(n - 1)]
    return [*rows, f"If someone {tag} is kind then they are nice."]


def check_answers(body: dict[str, Any], questions: list[str]) -> str | None:
    """None when an /ask body is well formed for the label model, else what is wrong."""
    answers = body.get("answers")
    if not isinstance(answers, list) or len(answers) != len(questions):
        return f"expected {len(questions)} answers, got {answers!r}"
    for question, answer in zip(questions, answers, strict=True):
        if answer.get("question") != question or answer.get("answer") not in LABELS:
            return f"bad answer {answer!r}"
        scores = answer.get("scores") or {}
        if set(scores) != LABELS or not math.isclose(sum(scores.values()), 1.0, abs_tol=1e-3):
            return f"bad scores {scores!r}"
    return None


# ----------------------------------------------------------------------------- load generator


@dataclass
class Owned:
    """A knowledge set one load worker created; `alive` None means a fault left its state unknown."""

    tenant: str
    knowledge_id: str
    facts: list[str]  # sorted, normalised
    alive: bool | None = True


@dataclass
class LoadResult:
    ops: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    tolerated_503: int = 0
    slowest_503_s: float = 0.0
    audit_503_retries: int = 0
    owned: list[Owned] = field(default_factory=list)
    cross_tenant_probes: int = 0

    def summary(self) -> dict[str, Any]:
        def pct(values: list[float], q: float) -> float:
            ordered = sorted(values)
            return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2) if ordered else 0.0

        return {
            "ops": dict(sorted(self.ops.items())),
            "latency_ms": {
                op: {"p50": round(1000 * statistics.median(v), 2), "p99": pct(v, 0.99), "max": pct(v, 1.0)}
                for op, v in sorted(self.latencies.items())
                if v
            },
            "violations": len(self.violations),
            "cross_tenant_probes": self.cross_tenant_probes,
            "tolerated_503": self.tolerated_503,
            "audit_503_retries": self.audit_503_retries,
        }


class LoadRunner:
    """Concurrent async clients mixing encode, ask, get and delete; every response is checked as it arrives.

    Each worker owns the knowledge sets it creates, so the expected state of every set is known
    exactly; `hot` sets are shared and asked by everyone (never deleted), and workers probe other
    tenants' ids, which must look unknown. With `tolerate_faults`, a 503 (or, when the API itself
    is killed, a connection error) is allowed and leaves the state of what it touched unknown.
    """

    WEIGHTS = (("encode", 20), ("ask", 34), ("ask_hot", 10), ("get", 14), ("delete", 8), ("reencode", 6),
               ("gone", 4), ("probe", 4))

    def __init__(
        self,
        report: Report,
        base_url: str,
        keys: dict[str, str | None],
        *,
        workers: int = 8,
        tag: str = "load",
        seed: int = 0,
        tolerate_faults: bool = False,
        facts_per_set: tuple[int, int] = (3, 12),
        max_alive_per_worker: int = 60,
    ) -> None:
        self.report = report
        self.base_url = base_url
        self.keys = keys
        self.workers = workers
        self.tag = tag
        self.rng = random.Random(seed)
        self.tolerate_faults = tolerate_faults
        self.facts_per_set = facts_per_set
        # Past this a worker deletes instead of encoding, so a long soak reaches a steady state
        # (bounded Redis memory and a bounded end-of-run audit) instead of growing forever.
        self.max_alive_per_worker = max_alive_per_worker
        self.result = LoadResult()
        self.hot: dict[str, list[str]] = {tenant: [] for tenant in keys}
        self._serial = 0
        self._ops = [op for op, _ in self.WEIGHTS]
        self._weights = [w for _, w in self.WEIGHTS]

    # --- helpers

    def _violation(self, what: str) -> None:
        self.result.violations.append(what)

    def _new_facts(self) -> list[str]:
        self._serial += 1
        return sorted(facts_for(f"{self.tag}{self._serial}x{self.rng.randrange(10**6)}",
                                self.rng.randint(*self.facts_per_set)))

    async def _call(
        self, client: httpx.AsyncClient, op: str, method: str, url: str, **kw: Any
    ) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = await client.request(method, url, **kw)
        except httpx.TransportError as exc:
            if not self.tolerate_faults:
                self._violation(f"{op}: transport error {exc!r}")
            self.report.record_transport_error()
            await asyncio.sleep(0.05)
            return None
        elapsed = time.monotonic() - started
        self.result.ops[op] += 1
        self.result.latencies.setdefault(op, []).append(elapsed)
        if response.status_code == 503 and self.tolerate_faults:
            self.result.tolerated_503 += 1
            self.result.slowest_503_s = max(self.result.slowest_503_s, elapsed)
            if "Retry-After" not in response.headers:
                self._violation(f"{op}: 503 without Retry-After")
            return None
        if response.status_code >= 500:
            self._violation(f"{op} {url}: {response.status_code} {response.text[:200]}")
            return None
        return response

    def _expect(self, response: httpx.Response | None, status: int, what: str) -> bool:
        if response is None:
            return False
        if response.status_code != status:
            self._violation(f"{what}: expected {status}, got {response.status_code} {response.text[:200]}")
            return False
        return True

    # --- operations

    async def _encode(self, client: httpx.AsyncClient, tenant: str, mine: list[Owned], hot: bool = False) -> None:
        facts = self._new_facts()
        shuffled = [*facts, facts[0]]  # order and a duplicate must not matter
        self.rng.shuffle(shuffled)
        response = await self._call(client, "encode", "POST", "/encode", json={"facts": shuffled})
        if not self._expect(response, 200, "encode"):
            return
        assert response is not None
        body = response.json()
        if body.get("n_facts") != len(facts) or len(body.get("knowledge_id", "")) != 64:
            self._violation(f"encode: bad body {body!r}")
            return
        owned = Owned(tenant, body["knowledge_id"], facts)
        self.result.owned.append(owned)
        if hot:
            self.hot[tenant].append(owned.knowledge_id)
        else:
            mine.append(owned)

    async def _ask(self, client: httpx.AsyncClient, kid: str, op: str) -> None:
        questions = [f"{self.rng.choice(['Anne', 'Bob', 'Carol'])} is kind."]
        if self.rng.random() < 0.3:
            questions.append("If someone is kind then they are nice.")
        response = await self._call(client, op, "POST", "/ask", json={"knowledge_id": kid, "questions": questions})
        if self._expect(response, 200, op):
            assert response is not None
            problem = check_answers(response.json(), questions)
            if problem:
                self._violation(f"{op}: {problem}")

    async def _get(self, client: httpx.AsyncClient, owned: Owned) -> None:
        with_facts = self.rng.random() < 0.5
        response = await self._call(
            client, "get", "GET", f"/knowledge/{owned.knowledge_id}", params={"include_facts": str(with_facts).lower()}
        )
        if self._expect(response, 200, "get"):
            assert response is not None
            body = response.json()
            if body["n_facts"] != len(owned.facts) or (with_facts and body["facts"] != owned.facts):
                self._violation(f"get: facts differ for {owned.knowledge_id[:12]}: {body!r}")

    async def _delete(self, client: httpx.AsyncClient, owned: Owned) -> None:
        response = await self._call(client, "delete", "DELETE", f"/knowledge/{owned.knowledge_id}")
        if response is None:
            owned.alive = None  # the delete may or may not have happened
        elif self._expect(response, 204, "delete"):
            owned.alive = False

    async def _reencode(self, client: httpx.AsyncClient, owned: Owned) -> None:
        # Encoding a known set again (facts reversed) must give the same id; for a deleted set it revives it.
        response = await self._call(client, "reencode", "POST", "/encode", json={"facts": owned.facts[::-1]})
        if self._expect(response, 200, "reencode"):
            assert response is not None
            if response.json()["knowledge_id"] != owned.knowledge_id:
                self._violation(f"reencode: id changed for {owned.knowledge_id[:12]}")
            owned.alive = True
        elif response is None:
            owned.alive = None

    async def _gone(self, client: httpx.AsyncClient, owned: Owned) -> None:
        method, url, kw = self.rng.choice(
            [
                ("GET", f"/knowledge/{owned.knowledge_id}", {}),
                ("POST", "/ask", {"json": {"knowledge_id": owned.knowledge_id, "question": "Bob is kind."}}),
                ("DELETE", f"/knowledge/{owned.knowledge_id}", {}),
            ]
        )
        self._expect(await self._call(client, "gone", method, url, **kw), 404, f"deleted {method} {url[:24]}")

    async def _probe(self, client: httpx.AsyncClient, tenant: str) -> None:
        others = [o for o in self.result.owned if o.tenant != tenant and o.alive]
        if not others:
            return
        victim = self.rng.choice(others)
        self.result.cross_tenant_probes += 1
        method, url, kw = self.rng.choice(
            [
                ("GET", f"/knowledge/{victim.knowledge_id}", {}),
                ("POST", "/ask", {"json": {"knowledge_id": victim.knowledge_id, "question": "Bob is kind."}}),
                ("DELETE", f"/knowledge/{victim.knowledge_id}", {}),
            ]
        )
        response = await self._call(client, "probe", method, url, **kw)
        if self._expect(response, 404, f"cross-tenant {method}"):
            assert response is not None
            if response.json() != {"detail": "unknown knowledge_id"}:
                self._violation(f"cross-tenant {method}: 404 body differs from an unknown id: {response.text}")

    async def _worker(self, index: int, tenant: str, deadline: float, stop: asyncio.Event) -> None:
        mine: list[Owned] = []
        async with counted_async_client(self.report, self.base_url, self.keys[tenant]) as client:
            await self._encode(client, tenant, mine, hot=index < len(self.keys))
            while time.monotonic() < deadline and not stop.is_set():
                op = self.rng.choices(self._ops, self._weights)[0]
                alive = [o for o in mine if o.alive]
                dead = [o for o in mine if o.alive is False][-200:]
                if len(mine) > len(alive) + 400:  # forget old deletions (the audit still has them)
                    mine[:] = [o for o in mine if o.alive is not False] + dead
                if op == "encode" and len(alive) >= self.max_alive_per_worker:
                    op = "delete"
                if op == "encode" or (not alive and op in {"ask", "get", "delete"}):
                    await self._encode(client, tenant, mine)
                elif op == "ask":
                    await self._ask(client, self.rng.choice(alive).knowledge_id, "ask")
                elif op == "ask_hot" and self.hot[tenant]:
                    await self._ask(client, self.rng.choice(self.hot[tenant]), "ask_hot")
                elif op == "get":
                    await self._get(client, self.rng.choice(alive))
                elif op == "delete":
                    await self._delete(client, self.rng.choice(alive))
                elif op == "reencode" and (dead or alive):
                    await self._reencode(client, self.rng.choice(dead or alive))
                elif op == "gone" and dead:
                    await self._gone(client, self.rng.choice(dead))
                elif op == "probe":
                    await self._probe(client, tenant)

    async def run(self, seconds: float, stop: asyncio.Event | None = None) -> LoadResult:
        stop = stop or asyncio.Event()
        deadline = time.monotonic() + seconds
        tenants = list(self.keys)
        await asyncio.gather(
            *(self._worker(i, tenants[i % len(tenants)], deadline, stop) for i in range(self.workers))
        )
        return self.result

    # --- the end-of-run audit

    async def verify(
        self, base_url: str | None = None, *, concurrency: int = 8, deleted_sample: int = 2000
    ) -> tuple[int, list[str]]:
        """Every set meant to exist is answerable with its exact facts; deleted ones (sampled in a soak) are gone."""
        alive = [o for o in self.result.owned if o.alive is not False]
        dead = [o for o in self.result.owned if o.alive is False]
        if len(dead) > deleted_sample:
            dead = self.rng.sample(dead, deleted_sample)
        todo = [*alive, *dead]
        ok, lost = 0, []
        clients = {
            t: counted_async_client(self.report, base_url or self.base_url, k) for t, k in self.keys.items()
        }

        async def patient(method: str, client: httpx.AsyncClient, url: str, **kw: Any) -> httpx.Response:
            # A 503 says "the store is busy, retry after N s" (e.g. a slow AOF fsync right after a restart);
            # the audit asks what the service *holds*, so it retries as a client honouring Retry-After would.
            # A set that stays 503 past the bound is reported with that status.
            give_up = time.monotonic() + AUDIT_RETRY_S
            while True:
                response = await client.request(method, url, **kw)
                if response.status_code != 503 or time.monotonic() > give_up:
                    return response
                self.result.audit_503_retries += 1
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))

        async def check(owned: Owned) -> None:
            nonlocal ok
            client = clients[owned.tenant]
            url = f"/knowledge/{owned.knowledge_id}"
            if owned.alive is False:
                response = await patient("GET", client, url)
                if response.status_code != 404:
                    self._violation(f"deleted set {owned.knowledge_id[:12]} is back: {response.status_code}")
                return
            got = await patient("GET", client, url, params={"include_facts": "true"})
            if owned.alive is None and got.status_code == 404:
                return  # a fault hid the outcome of a delete: either state is fine, but not half of one
            if got.status_code != 200 or got.json().get("facts") != owned.facts:
                lost.append(f"{owned.knowledge_id[:12]}: GET {got.status_code} {got.text[:120]}")
                return
            asked = await patient(
                "POST", client, "/ask", json={"knowledge_id": owned.knowledge_id, "question": "Bob is kind."}
            )
            if asked.status_code != 200 or check_answers(asked.json(), ["Bob is kind."]):
                lost.append(f"{owned.knowledge_id[:12]}: ask {asked.status_code} {asked.text[:120]}")
                return
            ok += 1

        async def drain() -> None:
            while todo:
                await check(todo.pop())

        try:
            await asyncio.gather(*(drain() for _ in range(concurrency)))
        finally:
            for client in clients.values():
                await client.aclose()
        return ok, lost
