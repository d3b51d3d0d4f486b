"""The embedded store over real HTTP: no Redis, facts in SQLite survive an API restart, deltas in an LRU."""

import http.client
import time
from collections.abc import Iterator

import httpx
import pytest

from benchmarks.processes import ApiProcess, metric
from tests.support import unique_facts


@pytest.fixture
def client(embedded_api: ApiProcess) -> Iterator[httpx.Client]:
    with embedded_api.client() as http:
        yield http


def test_embedded_store_is_ready_without_redis_or_keys(client: httpx.Client) -> None:
    ready = client.get("/readyz").json()
    assert ready["store"] == "embedded"
    assert ready["labels"] is None


def test_without_a_label_set_answers_are_generated(client: httpx.Client) -> None:
    kid = client.post("/encode", json={"facts": unique_facts("gen")}).json()["knowledge_id"]
    body = client.post("/ask", json={"knowledge_id": kid, "questions": ["Who is kind?", "Is Bob nice?"]}).json()
    assert [a["question"] for a in body["answers"]] == ["Who is kind?", "Is Bob nice?"]
    for answer in body["answers"]:
        assert answer["scores"] is None
        assert isinstance(answer["answer"], str)
    short = client.post("/ask", json={"knowledge_id": kid, "question": "Who is kind?", "max_new_tokens": 1}).json()
    long = client.post("/ask", json={"knowledge_id": kid, "question": "Who is kind?", "max_new_tokens": 12}).json()
    assert len(short["answers"][0]["answer"]) <= len(long["answers"][0]["answer"])
    # With explicit choices the same model scores them.
    scored = client.post("/ask", json={"knowledge_id": kid, "question": "Is Bob nice?", "choices": ["yes", "no"]})
    assert set(scored.json()["answers"][0]["scores"]) == {"yes", "no"}


def test_idempotent_encode_on_the_embedded_store(client: httpx.Client) -> None:
    facts = unique_facts("emb-idem")
    first = client.post("/encode", json={"facts": facts}).json()
    loops = metric(client, "reckoning_encode_seconds_count")
    second = client.post("/encode", json={"facts": list(reversed(facts))}).json()
    assert second["knowledge_id"] == first["knowledge_id"]
    assert second["cached"] is True
    assert metric(client, "reckoning_encode_seconds_count") == loops


def test_lru_ttl_expiry_then_reencode(client: httpx.Client) -> None:
    kid = client.post("/encode", json={"facts": unique_facts("emb-ttl"), "ttl_s": 1}).json()["knowledge_id"]
    time.sleep(1.1)
    assert client.get(f"/knowledge/{kid}").json()["delta_cached"] is False
    reencodes = metric(client, "reckoning_reencodes_total")
    assert client.post("/ask", json={"knowledge_id": kid, "question": "Who is kind?"}).status_code == 200
    assert metric(client, "reckoning_reencodes_total") == reencodes + 1
    assert client.get(f"/knowledge/{kid}").json()["delta_cached"] is True


def test_restart_keeps_facts_and_reencodes_the_lost_deltas(embedded_api: ApiProcess) -> None:
    facts = unique_facts("restart", 4)
    with embedded_api.client() as client:
        kid = client.post("/encode", json={"facts": facts}).json()["knowledge_id"]
        gone = client.post("/encode", json={"facts": unique_facts("deleted-before-restart")}).json()["knowledge_id"]
        assert client.delete(f"/knowledge/{gone}").status_code == 204
        before = client.post("/ask", json={"knowledge_id": kid, "question": "Who is kind?"}).json()["answers"]

    old_pid = embedded_api.pid
    embedded_api.stop()
    embedded_api.start()
    assert embedded_api.pid != old_pid

    with embedded_api.client() as client:
        info = client.get(f"/knowledge/{kid}", params={"include_facts": "true"}).json()
        assert info["facts"] == sorted(facts)
        assert info["delta_cached"] is False  # the LRU is memory only
        assert client.get(f"/knowledge/{gone}").status_code == 404  # deletes are durable too
        assert metric(client, "reckoning_reencodes_total") == 0
        after = client.post("/ask", json={"knowledge_id": kid, "question": "Who is kind?"}).json()["answers"]
        assert metric(client, "reckoning_reencodes_total") == 1
        assert after == before  # deterministic encode: same weights, same greedy answer
        again = client.post("/encode", json={"facts": facts}).json()
        assert again["knowledge_id"] == kid and again["cached"] is True


def test_an_idle_connection_outlives_the_clients_own_idle_expiry(embedded_api: ApiProcess) -> None:
    """The server keeps an idle connection past httpx's 5 s expiry (uvicorn's default is also 5 s, and a client
    could send on a pooled connection at the instant the server closed it): one socket, two requests 6 s apart."""
    host, port = embedded_api.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", "/healthz")
        first = conn.getresponse()
        assert first.status == 200 and first.read()
        sock = conn.sock
        time.sleep(6)
        conn.request("GET", "/healthz")  # on a socket the server had closed: RemoteDisconnected here
        second = conn.getresponse()
        assert second.status == 200 and second.read()
        assert conn.sock is sock  # the same connection, not a reconnect
    finally:
        conn.close()
