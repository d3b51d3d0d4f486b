"""Redis killed under a running API: fast 503s with Retry-After, then recovery without restarting the API."""

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from benchmarks.processes import ApiProcess, RedisProcess, metric
from tests.support import unique_facts

REPO = Path(__file__).resolve().parents[2]
FAST = 4.0  # seconds: an unreachable store must not make requests hang


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Iterator[tuple[RedisProcess, ApiProcess]]:
    redis_server = RedisProcess(tmp_path_factory.mktemp("redis-faults"), config=REPO / "docker" / "redis.conf")
    redis_server.start()
    api = ApiProcess(
        tmp_path_factory.mktemp("api-faults"),
        {
            "RECKONING_MODEL_DIR": str(tiny_checkpoint),
            "RECKONING_REDIS_URL": redis_server.url,
            "RECKONING_STORE_TIMEOUT_S": "0.5",
            "RECKONING_RETRY_AFTER_S": "7",
        },
    )
    api.start()
    yield redis_server, api
    api.stop()
    redis_server.stop()


def timed(call: "object") -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()  # type: ignore[operator]
    return response, time.monotonic() - started


def test_redis_killed_gives_503_then_recovers_without_restart(stack: tuple[RedisProcess, ApiProcess]) -> None:
    redis_server, api = stack
    pid = api.pid
    with api.client() as client:
        kid = client.post("/encode", json={"facts": unique_facts("fault")}).json()["knowledge_id"]
        assert client.post("/ask", json={"knowledge_id": kid, "question": "Bob is kind."}).status_code == 200
        unavailable_before = metric(client, "reckoning_requests_total", route="/ask", status="503")

        redis_server.kill()

        calls = {
            "ask": lambda: client.post("/ask", json={"knowledge_id": kid, "question": "Bob is kind."}),
            "encode": lambda: client.post("/encode", json={"facts": unique_facts("during-outage")}),
            "get": lambda: client.get(f"/knowledge/{kid}"),
            "delete": lambda: client.delete(f"/knowledge/{kid}"),
            "readyz": lambda: client.get("/readyz"),
        }
        for name, call in calls.items():
            response, elapsed = timed(call)
            assert response.status_code == 503, (name, response.text)
            assert response.headers["Retry-After"] == "7", name
            assert "detail" in response.json()
            assert elapsed < FAST, f"{name} took {elapsed:.2f}s with the store down"
        assert client.get("/healthz").status_code == 200  # the process itself is fine
        assert metric(client, "reckoning_requests_total", route="/ask", status="503") == unavailable_before + 1

        redis_server.start()  # same port, same directory: the AOF brings the facts back

        deadline = time.monotonic() + 15
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "API did not recover after Redis came back"
            time.sleep(0.2)
        response = client.post("/ask", json={"knowledge_id": kid, "question": "Bob is kind."})
        assert response.status_code == 200, response.text
        assert client.get(f"/knowledge/{kid}").status_code == 200
        assert client.post("/encode", json={"facts": unique_facts("after-outage")}).status_code == 200
    assert api.pid == pid and api.proc is not None and api.proc.poll() is None  # never restarted


def test_api_starts_while_redis_is_down_and_becomes_ready(
    tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path
) -> None:
    redis_server = RedisProcess(tmp_path_factory.mktemp("redis-late"), config=REPO / "docker" / "redis.conf")
    api = ApiProcess(
        tmp_path_factory.mktemp("api-late"),
        {"RECKONING_MODEL_DIR": str(tiny_checkpoint), "RECKONING_REDIS_URL": redis_server.url},
    )
    api.start()
    try:
        with api.client() as client:
            response = client.get("/readyz")
            assert response.status_code == 503
            assert response.json()["status"] == "unavailable"
            assert "Retry-After" in response.headers
            redis_server.start()
            assert client.get("/readyz").status_code == 200
            assert client.post("/encode", json={"facts": unique_facts("late")}).status_code == 200
    finally:
        api.stop()
        redis_server.stop()
