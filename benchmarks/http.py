"""HTTP figures: a real redis-server and uvicorn on loopback, 16 async clients, hot id vs many ids, server RSS."""

import asyncio
import itertools
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from benchmarks.config import BenchConfig
from benchmarks.data import distinct_sets
from benchmarks.processes import ApiProcess, RedisProcess, metric, rss_mib
from benchmarks.timing import percentile
from training.data.episode import Episode

_MB = 1024 * 1024


@dataclass
class _Window:
    latencies_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    first_start: float = float("inf")
    last_end: float = 0.0


async def _load(url: str, plan: list[tuple[str, str]], *, concurrency: int, seconds: float, warmup_s: float,
                cap: int) -> _Window:
    """`concurrency` clients, each its own connection pool, ask one question per request, round-robin
    through `plan`, for warmup_s (discarded) then `seconds`; stops by itself at the deadline or cap."""
    window = _Window()
    order = itertools.count()
    begin = time.perf_counter()
    measure_from = begin + warmup_s
    deadline = measure_from + seconds
    sent = 0

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal sent
        while time.perf_counter() < deadline and sent < cap:
            sent += 1
            kid, question = plan[next(order) % len(plan)]
            started = time.perf_counter()
            try:
                response = await client.post("/ask", json={"knowledge_id": kid, "question": question})
                status = response.status_code
                server_ms = float(response.json().get("ask_ms", "nan")) if status == 200 else None
            except httpx.HTTPError:
                status, server_ms = 0, None  # 0 = transport error
            ended = time.perf_counter()
            if started < measure_from:
                continue
            window.statuses[status] += 1
            window.first_start = min(window.first_start, started)
            window.last_end = max(window.last_end, ended)
            if status == 200:
                window.latencies_ms.append((ended - started) * 1e3)
                if server_ms is not None:
                    window.server_ms.append(server_ms)

    clients = [httpx.AsyncClient(base_url=url, timeout=60.0) for _ in range(concurrency)]
    try:
        await asyncio.gather(*(client_loop(c) for c in clients))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return window


def _merge(windows: list[_Window]) -> tuple[_Window, float]:
    merged = _Window()
    span = 0.0
    for w in windows:
        merged.latencies_ms += w.latencies_ms
        merged.server_ms += w.server_ms
        merged.statuses.update(w.statuses)
        if w.statuses:
            span += w.last_end - w.first_start
    return merged, span


def _summary(window: _Window, span: float, reencodes: float, misses: float) -> dict[str, Any]:
    ok = window.statuses.get(200, 0)
    # throughput over the time the measured requests actually occupied (>= the nominal window)
    return {
        "asks": ok,
        "errors": sum(n for s, n in window.statuses.items() if s != 200),
        "statuses": {str(s): n for s, n in sorted(window.statuses.items())},
        "asks_per_s": round(ok / span, 3) if span > 0 else 0.0,
        "p50_ms": round(percentile(window.latencies_ms, 50), 3),
        "p99_ms": round(percentile(window.latencies_ms, 99), 3),
        "server_ask_p50_ms": round(percentile(window.server_ms, 50), 3),
        "seconds": round(span, 3),
        "reencodes": int(reencodes),
        "delta_cache_misses": int(misses),
    }


def _counters(api: ApiProcess) -> tuple[float, float]:
    with api.client() as c:
        return metric(c, "reckoning_reencodes_total"), metric(c, "reckoning_delta_cache_misses_total")


def _scenarios(api: ApiProcess, plans: dict[str, list[tuple[str, str]]], cfg: BenchConfig) -> dict[str, Any]:
    """Each scenario's window is cut into cfg.http_rounds segments run in alternation (A B A B ...),
    so that a change in background load during the run hits every scenario alike."""
    windows: dict[str, list[_Window]] = {name: [] for name in plans}
    counters = dict.fromkeys(plans, (0.0, 0.0))
    rounds = max(1, cfg.http_rounds)
    for _ in range(rounds):
        for name, plan in plans.items():
            before = _counters(api)
            windows[name].append(asyncio.run(_load(
                api.url, plan, concurrency=cfg.http_concurrency, seconds=cfg.http_seconds / rounds,
                warmup_s=cfg.http_warmup_s, cap=cfg.http_request_cap)))
            after = _counters(api)
            counters[name] = (counters[name][0] + after[0] - before[0], counters[name][1] + after[1] - before[1])
    out = {}
    for name in plans:
        window, span = _merge(windows[name])
        out[name] = _summary(window, span, *counters[name])
    return out


def http_figures(cfg: BenchConfig, hot: Episode, theories: list[Episode], delta_blob_bytes: int,
                 log: Any = sys.stderr, api_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Encode the hot set and N distinct sets over HTTP, then load both scenarios; RSS after encoding.

    `api_env` adds RECKONING_* settings to the API process (to compare storage options, say);
    the published figures use the service's defaults."""
    n_ids = cfg.http_distinct_ids
    # Redis must hold every delta, or the many-ids scenario measures re-encodes, not serving.
    needed = int((n_ids + 2) * delta_blob_bytes * 1.3) + 256 * _MB
    available = psutil.virtual_memory().available
    capped = False
    if available and needed > 0.6 * available:
        n_ids = max(1, int((0.6 * available - 256 * _MB) / (1.3 * delta_blob_bytes)) - 2)
        needed = int((n_ids + 2) * delta_blob_bytes * 1.3) + 256 * _MB
        capped = True
    with tempfile.TemporaryDirectory(prefix="reckoning-bench-") as tmp:
        redis_proc = RedisProcess(Path(tmp) / "redis")
        redis_proc.start()
        try:
            rc = redis_proc.client()
            # The cache is what is measured, not persistence: no AOF, room for every delta.
            rc.config_set("appendonly", "no")
            rc.config_set("maxmemory", str(needed))
            api = ApiProcess(
                Path(tmp) / "api",
                {
                    "RECKONING_MODEL_DIR": str(cfg.model.resolve()),
                    "RECKONING_REDIS_URL": redis_proc.url,
                    "RECKONING_TORCH_THREADS": str(cfg.threads),
                    "RECKONING_LOG_LEVEL": "warning",
                    "RECKONING_STORE_TIMEOUT_S": "10",
                    # Serving throughput is measured, not the per-tenant limiter: at the default 6000/minute the hot
                    # scenario of a full run was capped at 100 asks/s (and answered 429 to the rest).
                    "RECKONING_RATE_LIMIT": "none",
                    "RECKONING_ENCODE_RATE_LIMIT": "none",
                    **(api_env or {}),
                },
            )
            api.start()
            try:
                return _run(api, rc, cfg, hot, theories, n_ids, needed, capped, log)
            finally:
                api.stop()
        finally:
            redis_proc.stop()


def many_over_one(hot: dict[str, Any], distinct: dict[str, Any]) -> float | None:
    """Distinct-id asks/s over hot-id asks/s; None unless both scenarios were answered 200 throughout (a refused
    request, a 429 say, would make one side's throughput a limit's, not the server's)."""
    if hot["errors"] or distinct["errors"] or not hot["asks_per_s"]:
        return None
    return float(distinct["asks_per_s"]) / float(hot["asks_per_s"])


def _rss(api: ApiProcess) -> dict[str, float]:
    return {"rss_mb": round(rss_mib(api.pid), 1)}


def _run(api: ApiProcess, rc: Any, cfg: BenchConfig, hot: Episode, theories: list[Episode], n_ids: int,
         maxmemory: int, capped: bool, log: Any) -> dict[str, Any]:
    rss_start = _rss(api)
    encode_client_ms: list[float] = []
    encode_server_ms: list[float] = []
    plan_many: list[tuple[str, str]] = []
    rng = random.Random(cfg.seed)
    started = time.perf_counter()
    with api.client(timeout=300.0) as c:
        r = c.post("/encode", json={"facts": list(hot.facts)})
        r.raise_for_status()
        hot_id = r.json()["knowledge_id"]
        for k, (facts, theory) in enumerate(distinct_sets(theories, n_ids)):
            if k and time.perf_counter() - started > cfg.http_encode_budget_s:
                # bounded in time: a starved machine yields fewer ids, recorded, rather than a run of hours
                print(f"bench: encode budget of {cfg.http_encode_budget_s:.0f}s spent after {k} sets", file=log)
                break
            t0 = time.perf_counter()
            r = c.post("/encode", json={"facts": list(facts)})
            r.raise_for_status()
            encode_client_ms.append((time.perf_counter() - t0) * 1e3)
            body = r.json()
            encode_server_ms.append(float(body["encode_ms"]))
            plan_many.append((body["knowledge_id"], rng.choice(theory.questions).text))
            if (k + 1) % 100 == 0:
                print(f"bench: encoded {k + 1}/{n_ids} sets over HTTP", file=log, flush=True)
    encode_seconds = time.perf_counter() - started
    rss_sets = _rss(api)
    redis_mem = int(rc.info("memory")["used_memory"])
    rng.shuffle(plan_many)  # consecutive requests hit unrelated ids
    plan_hot = [(hot_id, q.text) for q in hot.questions]
    results = _scenarios(api, {"hot": plan_hot, "distinct": plan_many}, cfg)
    hot_res, many_res = results["hot"], results["distinct"]
    ratio = many_over_one(hot_res, many_res)
    if ratio is None:
        print(f"bench: many_over_one not reported: hot {hot_res['statuses']}, distinct {many_res['statuses']}",
              file=log, flush=True)
    return {
        "concurrency": cfg.http_concurrency,
        "seconds_per_scenario": cfg.http_seconds,
        "rounds": max(1, cfg.http_rounds),
        "warmup_s": cfg.http_warmup_s,
        "n_distinct_ids": len(plan_many),
        "n_distinct_ids_wanted": cfg.http_distinct_ids,
        "n_distinct_ids_capped_by_memory": capped,
        "encode_budget_s": cfg.http_encode_budget_s,
        "hot": hot_res,
        "distinct": many_res,
        "many_over_one": round(ratio, 4) if ratio is not None else None,
        "encode_over_http": {
            "n_sets": len(plan_many) + 1,
            "seconds": round(encode_seconds, 2),
            "client_p50_ms": round(percentile(encode_client_ms, 50), 3),
            "server_encode_p50_ms": round(percentile(encode_server_ms, 50), 3),
        },
        "server_rss": {"after_start": rss_start, "after_encoding": rss_sets, "after_load": _rss(api)},
        "redis": {"used_memory_mb": round(redis_mem / _MB, 1), "maxmemory_mb": round(maxmemory / _MB, 1),
                  "appendonly": "no", "policy": "volatile-lru"},
        "client": "httpx.AsyncClient, one connection pool per client",
    }
