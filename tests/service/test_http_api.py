"""Every route over real HTTP against uvicorn + a real redis-server: encode, ask, knowledge, health, metrics.

Races, faults and tenant isolation over the same stack live in tests/reliability (test_races, test_faults,
test_security); bad input and limits in tests/reliability/test_bad_input.
"""

import concurrent.futures
import re
import secrets
import time
from collections.abc import Callable

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.processes import RedisProcess, metric
from service.metrics import CONTRACT_METRICS
from service.store.redis_store import model_key, redis_key
from tests.support import monitored, plant_delta, served_model, stored_delta, unique_facts

LABELS = ["True", "False", "Unknown"]


def encode(client: httpx.Client, facts: list[str], **extra: object) -> dict:
    response = client.post("/encode", json={"facts": facts, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def ask(client: httpx.Client, knowledge_id: str, **body: object) -> dict:
    response = client.post("/ask", json={"knowledge_id": knowledge_id, **body})
    assert response.status_code == 200, response.text
    return response.json()


_MODEL: list[str] = []


@pytest.fixture(autouse=True)
def _served_model(anonymous: httpx.Client) -> None:
    if not _MODEL:
        _MODEL.append(served_model(anonymous))


def blob(redis_client: redis.Redis, knowledge_id: str) -> bytes:
    return stored_delta(redis_client, delta_key(knowledge_id))[0]


def delta_key(knowledge_id: str, tenant: str = "alice") -> str:
    return model_key("reckoning", tenant, "delta", _MODEL[0], knowledge_id)


def facts_key(knowledge_id: str, tenant: str = "alice") -> str:
    return redis_key("reckoning", tenant, "facts", knowledge_id)


def test_health_and_readiness_need_no_key(anonymous: httpx.Client) -> None:
    assert anonymous.get("/healthz").json() == {"status": "ok"}
    ready = anonymous.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["store"] == "redis"
    assert body["labels"] == LABELS
    assert re.fullmatch(r"[0-9a-f]{64}", body["fingerprint"])


def test_encode_returns_the_contract_fields(alice: httpx.Client) -> None:
    facts = unique_facts("contract")
    body = encode(alice, facts)
    assert set(body) == {"knowledge_id", "n_facts", "cached", "encode_ms", "delta_bytes", "model", "recall"}
    assert re.fullmatch(r"[0-9a-f]{64}", body["knowledge_id"])
    assert body["n_facts"] == len(facts)
    assert body["cached"] is False
    assert body["encode_ms"] > 0
    assert body["delta_bytes"] > 0
    assert body["model"] == "tiny-labels"
    assert 0.0 <= body["recall"] <= 1.0


def test_encode_is_idempotent_and_runs_no_second_inner_loop(alice: httpx.Client) -> None:
    facts = unique_facts("idem", 4)
    first = encode(alice, facts)
    loops = metric(alice, "reckoning_encode_seconds_count")

    # Same set: other order, a duplicate, extra whitespace.
    again = encode(alice, [f"  {facts[-1]}  ", *reversed(facts), facts[0].replace(" ", "   ")])

    assert again["knowledge_id"] == first["knowledge_id"]
    assert again["cached"] is True
    assert again["encode_ms"] == 0.0
    assert again["n_facts"] == len(facts)
    assert again["delta_bytes"] == first["delta_bytes"]
    assert metric(alice, "reckoning_encode_seconds_count") == loops  # no inner loop ran

    changed = encode(alice, [*facts[:-1], facts[-1] + " Really."])
    assert changed["knowledge_id"] != first["knowledge_id"]
    assert changed["cached"] is False
    assert metric(alice, "reckoning_encode_seconds_count") == loops + 1


def test_ask_one_question_is_constrained_to_the_label_set(alice: httpx.Client) -> None:
    kid = encode(alice, unique_facts("ask1"))["knowledge_id"]
    body = ask(alice, kid, question="Bob is nice.")
    assert body["knowledge_id"] == kid
    assert body["ask_ms"] > 0
    [answer] = body["answers"]
    assert answer["question"] == "Bob is nice."
    assert answer["answer"] in LABELS
    assert set(answer["scores"]) == set(LABELS)
    assert sum(answer["scores"].values()) == pytest.approx(1.0, abs=1e-4)
    assert answer["answer"] == max(answer["scores"], key=answer["scores"].get)


def test_ask_a_batch_keeps_order_and_matches_single_asks(alice: httpx.Client) -> None:
    kid = encode(alice, unique_facts("batch"))["knowledge_id"]
    questions = ["Anne is kind.", "Bob is not nice.", "Carol is big."]
    batch = ask(alice, kid, questions=questions)["answers"]
    assert [a["question"] for a in batch] == questions
    for question, answer in zip(questions, batch, strict=True):
        single = ask(alice, kid, question=question)["answers"][0]
        assert single["answer"] == answer["answer"]
        for label in LABELS:
            assert single["scores"][label] == pytest.approx(answer["scores"][label], abs=1e-4)


def test_ask_with_choices_scores_them(alice: httpx.Client) -> None:
    kid = encode(alice, unique_facts("choices"))["knowledge_id"]
    [answer] = ask(alice, kid, question="What is Bob?", choices=["kind", "very big"])["answers"]
    assert set(answer["scores"]) == {"kind", "very big"}
    assert sum(answer["scores"].values()) == pytest.approx(1.0, abs=1e-4)
    assert answer["answer"] in {"kind", "very big"}


def test_get_knowledge_reports_metadata(alice: httpx.Client) -> None:
    facts = unique_facts("meta")
    enc = encode(alice, facts, ttl_s=600)
    info = alice.get(f"/knowledge/{enc['knowledge_id']}").json()
    assert info["knowledge_id"] == enc["knowledge_id"]
    assert info["n_facts"] == len(facts)
    assert info["model"] == "tiny-labels"
    assert info["delta_cached"] is True
    assert 590 < info["ttl_s"] <= 600
    assert info["delta_bytes"] == enc["delta_bytes"]
    assert info["facts"] is None
    assert abs(time.time() - _parse_ts(info["created"])) < 60
    with_facts = alice.get(f"/knowledge/{enc['knowledge_id']}", params={"include_facts": "true"}).json()
    assert with_facts["facts"] == sorted(facts)


def _parse_ts(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def test_delete_forgets_facts_and_delta(alice: httpx.Client, redis_client: redis.Redis) -> None:
    kid = encode(alice, unique_facts("delete"))["knowledge_id"]
    assert redis_client.exists(facts_key(kid), delta_key(kid)) == 2
    response = alice.delete(f"/knowledge/{kid}")
    assert response.status_code == 204
    assert response.content == b""
    assert redis_client.exists(facts_key(kid), delta_key(kid)) == 0
    assert alice.get(f"/knowledge/{kid}").status_code == 404
    assert alice.post("/ask", json={"knowledge_id": kid, "question": "Bob is kind."}).status_code == 404
    assert alice.delete(f"/knowledge/{kid}").status_code == 404


def test_facts_are_durable_and_only_the_delta_has_a_ttl(
    alice: httpx.Client, redis_client: redis.Redis
) -> None:
    kid = encode(alice, unique_facts("ttl-layout"), ttl_s=120)["knowledge_id"]
    assert redis_client.ttl(facts_key(kid)) == -1  # never expires, never evicted by volatile-lru
    assert 110 < redis_client.ttl(delta_key(kid)) <= 120
    assert redis_client.config_get("maxmemory-policy")["maxmemory-policy"] == "volatile-lru"


def test_encode_again_with_ttl_refreshes_the_delta_ttl(
    alice: httpx.Client, redis_client: redis.Redis
) -> None:
    facts = unique_facts("touch")
    kid = encode(alice, facts, ttl_s=100)["knowledge_id"]
    assert encode(alice, facts, ttl_s=1000)["cached"] is True
    assert redis_client.ttl(delta_key(kid)) > 900


def test_ttl_expiry_then_transparent_reencode(alice: httpx.Client) -> None:
    kid = encode(alice, unique_facts("expiry"), ttl_s=1)["knowledge_id"]
    before = ask(alice, kid, question="Anne is nice.")["answers"][0]

    deadline = time.monotonic() + 5
    while alice.get(f"/knowledge/{kid}").json()["delta_cached"]:
        assert time.monotonic() < deadline, "delta never expired"
        time.sleep(0.1)

    reencodes = metric(alice, "reckoning_reencodes_total")
    misses = metric(alice, "reckoning_delta_cache_misses_total")
    after = ask(alice, kid, question="Anne is nice.")["answers"][0]

    assert metric(alice, "reckoning_reencodes_total") == reencodes + 1
    assert metric(alice, "reckoning_delta_cache_misses_total") == misses + 1
    # Re-encoding is deterministic: the same facts give the same answer.
    assert after["answer"] == before["answer"]
    for label in LABELS:
        assert after["scores"][label] == pytest.approx(before["scores"][label], abs=1e-4)


def test_encode_after_expiry_reencodes_from_stored_facts(
    alice: httpx.Client, redis_client: redis.Redis
) -> None:
    facts = unique_facts("expired-encode")
    kid = encode(alice, facts)["knowledge_id"]
    redis_client.delete(delta_key(kid))
    reencodes = metric(alice, "reckoning_reencodes_total")
    again = encode(alice, facts)
    assert again["knowledge_id"] == kid
    assert again["cached"] is False
    assert metric(alice, "reckoning_reencodes_total") == reencodes + 1
    assert redis_client.exists(delta_key(kid)) == 1


def test_cache_hits_are_counted(alice: httpx.Client) -> None:
    kid = encode(alice, unique_facts("hits"))["knowledge_id"]
    hits = metric(alice, "reckoning_delta_cache_hits_total")
    asks = metric(alice, "reckoning_ask_seconds_count")
    for _ in range(3):
        ask(alice, kid, question="Bob is kind.")
    assert metric(alice, "reckoning_delta_cache_hits_total") == hits + 3
    assert metric(alice, "reckoning_ask_seconds_count") == asks + 3


def test_hot_asks_use_premerged_weights_until_the_stored_delta_changes(
    alice: httpx.Client, redis_client: redis.Redis
) -> None:
    kid = encode(alice, unique_facts("weights"))["knowledge_id"]
    hits, misses = (metric(alice, f"reckoning_weight_cache_{k}_total") for k in ("hits", "misses"))
    first = ask(alice, kid, question="Bob is kind.", choices=LABELS)
    for _ in range(2):  # the encode left its weights in the cache: no verify, no merge
        assert ask(alice, kid, question="Bob is kind.", choices=LABELS)["answers"] == first["answers"]
    assert metric(alice, "reckoning_weight_cache_hits_total") == hits + 3
    assert metric(alice, "reckoning_weight_cache_misses_total") == misses
    assert metric(alice, "reckoning_weight_cache_bytes") > 0

    # A hot ask reads the stored MAC only; a changed one (the delta replaced behind this process) is a miss,
    # and the replacement is verified before use.
    good = blob(redis_client, kid)
    corrupted = bytearray(good)
    corrupted[-5] ^= 0xFF
    plant_delta(redis_client, delta_key(kid), bytes(corrupted), "2" * 64)
    rejected = metric(alice, "reckoning_delta_rejected_total", reason="ForgedDelta")
    assert ask(alice, kid, question="Bob is kind.", choices=LABELS)["answers"] == first["answers"]
    assert metric(alice, "reckoning_delta_rejected_total", reason="ForgedDelta") == rejected + 1
    assert metric(alice, "reckoning_weight_cache_misses_total") == misses + 1
    assert ask(alice, kid, question="Bob is kind.", choices=LABELS)["answers"] == first["answers"]
    assert metric(alice, "reckoning_weight_cache_hits_total") == hits + 4  # the re-encode refilled it


def test_hot_asks_read_the_delta_mac_not_the_blob_in_one_round_trip(
    alice: httpx.Client, redis_client: redis.Redis, redis_server: RedisProcess
) -> None:
    kid = encode(alice, unique_facts("mac-only"))["knowledge_id"]
    ask(alice, kid, question="Bob is kind.")

    def calls(command: str) -> int:
        return int(redis_client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))

    hget, hmget = calls("hget"), calls("hmget")
    with monitored(redis_server.port, kid) as seen:
        for _ in range(5):
            ask(alice, kid, question="Bob is kind.")
    assert calls("hget") - hget == 5  # HGET <delta> mac: a few bytes per ask
    assert calls("hmget") == hmget  # HMGET <delta> mac blob: never, the weights are in process
    # One round trip per ask: the facts record and the delta's MAC in one MULTI/EXEC (the store's only reads).
    one_trip = [("MULTI",), ("GET", facts_key(kid)), ("HGET", delta_key(kid), "mac"), ("EXEC",)]
    assert seen == one_trip * 5, seen


def test_metrics_expose_the_contract_names_and_types(anonymous: httpx.Client, alice: httpx.Client) -> None:
    encode(alice, unique_facts("metrics"))
    response = anonymous.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    samples = {s.name for family in text_string_to_metric_families(text) for s in family.samples}
    for name in CONTRACT_METRICS:
        assert name in samples or f"{name}_count" in samples, name
    assert "# TYPE reckoning_requests_total counter" in text
    assert "# TYPE reckoning_encode_seconds histogram" in text
    assert "# TYPE reckoning_ask_seconds histogram" in text
    assert "# TYPE reckoning_delta_bytes histogram" in text
    assert "# TYPE reckoning_inner_loss histogram" in text
    assert metric(anonymous, "reckoning_inner_loss_count") >= 1
    assert metric(anonymous, "reckoning_delta_bytes_count") >= 1


def test_requests_are_counted_by_route_template_and_status(alice: httpx.Client) -> None:
    route = "/knowledge/{knowledge_id}"
    before = metric(alice, "reckoning_requests_total", route=route, status="404")
    alice.get(f"/knowledge/{secrets.token_hex(32)}")
    alice.get(f"/knowledge/{secrets.token_hex(32)}")
    assert metric(alice, "reckoning_requests_total", route=route, status="404") == before + 2
    unmatched = metric(alice, "reckoning_requests_total", route="unmatched", status="404")
    alice.get("/no/such/route")
    assert metric(alice, "reckoning_requests_total", route="unmatched", status="404") == unmatched + 1


def test_openapi_documents_routes_limits_and_examples(anonymous: httpx.Client) -> None:
    assert anonymous.get("/docs").status_code == 200
    spec = anonymous.get("/openapi.json").json()
    for path in ("/encode", "/ask", "/knowledge/{knowledge_id}", "/healthz", "/readyz"):
        assert path in spec["paths"], path
    schemas = spec["components"]["schemas"]
    encode_request = schemas["EncodeRequest"]
    assert encode_request["properties"]["facts"]["maxItems"] == 8  # this server's RECKONING_MAX_FACTS
    assert encode_request["examples"]
    assert schemas["AskRequest"]["examples"]
    assert "bearer" in str(spec["components"]["securitySchemes"]).lower()


def test_concurrent_asks_on_different_sets_get_their_own_answers(
    alice_clients: Callable[[int], list[httpx.Client]],
) -> None:
    # Guards the engine's single torch thread: concurrent forwards on one module mix up deltas.
    clients = alice_clients(8)
    kids = [encode(clients[0], unique_facts(f"mix{i}", 2 + i))["knowledge_id"] for i in range(3)]
    questions = ["Anne is nice.", "Bob is kind.", "Carol is not nice."]
    serial = {kid: ask(clients[0], kid, questions=questions)["answers"] for kid in kids}

    jobs = [(clients[i % len(clients)], kids[i % len(kids)]) for i in range(48)]
    with concurrent.futures.ThreadPoolExecutor(len(clients)) as pool:
        results = list(pool.map(lambda job: (job[1], ask(job[0], job[1], questions=questions)["answers"]), jobs))
    for kid, answers in results:
        assert answers == serial[kid]
