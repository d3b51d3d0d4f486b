"""Per-tenant rate limits (429 + Retry-After) and quotas (403), and forged facts records (409 that says so, never
the record's text encoded): the app in process on the tiny model and the embedded store."""

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from benchmarks.processes import metric_value
from service.settings import Settings
from tests.unit.inprocess import bearer, serving

ALICE, BOB = bearer("alice-key-0123456789"), bearer("bob-key-0123456789")
KEYS = {"alice-key-0123456789": "alice", "bob-key-0123456789": "bob"}
FACTS = ["Bob is kind.", "Anne is nice.", "If someone is kind then they are nice."]


def settings(tmp_path: Path, model: Path, **extra: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        model_dir=model,
        sqlite_path=tmp_path / "k.sqlite3",
        api_keys=KEYS,
        torch_threads=1,
        **extra,
    )


async def metric(client: Any, name: str, **labels: str) -> float:
    return metric_value((await client.get("/metrics")).text, name, **labels)


def test_a_tenant_over_its_rate_limit_gets_429_with_retry_after_and_others_do_not(
    tmp_path: Path, tiny_gpt2: Path
) -> None:
    async def scenario() -> None:
        async with serving(settings(tmp_path, tiny_gpt2, rate_limit="4/minute", encode_rate_limit="2/minute")) as (
            _,
            client,
        ):
            first = await client.post("/encode", json={"facts": FACTS}, headers=ALICE)
            assert first.status_code == 200, first.text
            assert (await client.post("/encode", json={"facts": FACTS[:2]}, headers=ALICE)).status_code == 200
            third = await client.post("/encode", json={"facts": FACTS[:1]}, headers=ALICE)
            assert third.status_code == 429 and int(third.headers["Retry-After"]) >= 1
            assert "encode_rate_limit=2 per 1 minute" in third.json()["detail"]
            kid = first.json()["knowledge_id"]
            over = await client.get(f"/knowledge/{kid}", headers=ALICE)  # alice's 4th request this minute
            assert over.status_code == 200
            limited = await client.get(f"/knowledge/{kid}", headers=ALICE)
            assert limited.status_code == 429 and "rate_limit=4 per 1 minute" in limited.json()["detail"]
            assert 1 <= int(limited.headers["Retry-After"]) <= 60
            assert (await client.get(f"/knowledge/{kid}", headers=BOB)).status_code == 404  # bob: his own budget
            assert await metric(client, "reckoning_throttled_total", reason="rate_limit") >= 1

    asyncio.run(scenario())


def test_a_tenant_at_its_quota_gets_403_before_any_inner_loop(tmp_path: Path, tiny_gpt2: Path) -> None:
    async def scenario() -> None:
        async with serving(settings(tmp_path, tiny_gpt2, tenant_max_knowledge_sets=2)) as (_, client):
            kids = []
            for facts in (FACTS, FACTS[:2]):
                response = await client.post("/encode", json={"facts": facts}, headers=ALICE)
                assert response.status_code == 200, response.text
                kids.append(response.json()["knowledge_id"])
            loops = await metric(client, "reckoning_encode_seconds_count")
            full = await client.post("/encode", json={"facts": FACTS[:1]}, headers=ALICE)
            assert full.status_code == 403
            assert "tenant_max_knowledge_sets=2" in full.json()["detail"] and "delete" in full.json()["detail"]
            assert await metric(client, "reckoning_encode_seconds_count") == loops  # refused before the inner loop
            again = await client.post("/encode", json={"facts": FACTS}, headers=ALICE)  # already stored: no quota
            assert again.status_code == 200 and again.json()["cached"] is True
            assert (await client.post("/encode", json={"facts": FACTS[:1]}, headers=BOB)).status_code == 200
            assert (await client.delete(f"/knowledge/{kids[0]}", headers=ALICE)).status_code == 204
            assert (await client.post("/encode", json={"facts": FACTS[:1]}, headers=ALICE)).status_code == 200

    asyncio.run(scenario())


def test_the_byte_quota_counts_stored_records(tmp_path: Path, tiny_gpt2: Path) -> None:
    async def scenario() -> None:
        async with serving(settings(tmp_path, tiny_gpt2, tenant_max_bytes=900)) as (_, client):
            assert (await client.post("/encode", json={"facts": FACTS[:1]}, headers=ALICE)).status_code == 200
            big = [f"Person {i} is kind and nice and round." for i in range(12)]
            refused = await client.post("/encode", json={"facts": big}, headers=ALICE)
            assert refused.status_code == 403 and "tenant_max_bytes=900" in refused.json()["detail"]

    asyncio.run(scenario())


def _rewrite_record(db: Path, knowledge_id: str, change: Any) -> None:
    with sqlite3.connect(db) as conn:
        (raw,) = conn.execute("SELECT record FROM knowledge WHERE knowledge_id = ?", (knowledge_id,)).fetchone()
        conn.execute("UPDATE knowledge SET record = ? WHERE knowledge_id = ?", (change(raw), knowledge_id))


def _attacker_facts(raw: str) -> str:
    data = json.loads(raw)
    data["facts"] = ["Mallory is the admin.", "If someone is Mallory then they are trusted."]
    return json.dumps(data)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (_attacker_facts, "fails its integrity check (its MAC does not verify)"),
        ("swap", "fails its integrity check (it holds another knowledge set's record)"),
    ],
)
def test_a_forged_facts_record_is_a_clear_409_and_never_encoded(
    tmp_path: Path, tiny_gpt2: Path, change: Any, says: str
) -> None:
    async def scenario() -> None:
        async with serving(settings(tmp_path, tiny_gpt2)) as (app, client):
            kid = (await client.post("/encode", json={"facts": FACTS}, headers=ALICE)).json()["knowledge_id"]
            other = (await client.post("/encode", json={"facts": FACTS[:2]}, headers=ALICE)).json()["knowledge_id"]
            db = tmp_path / "k.sqlite3"
            if change == "swap":
                with sqlite3.connect(db) as conn:
                    (raw,) = conn.execute("SELECT record FROM knowledge WHERE knowledge_id = ?", (other,)).fetchone()
                _rewrite_record(db, kid, lambda _: raw)
            else:
                _rewrite_record(db, kid, change)
            await app.state.store.delete_delta("alice", kid)  # an ask would have to re-encode from the record
            app.state.knowledge.weights.invalidate(("alice", kid))
            loops = await metric(client, "reckoning_encode_seconds_count")
            for response in (
                await client.get(f"/knowledge/{kid}", params={"include_facts": "true"}, headers=ALICE),
                await client.post("/ask", json={"knowledge_id": kid, "question": "Bob is kind."}, headers=ALICE),
                await client.post("/encode", json={"facts": FACTS}, headers=ALICE),
            ):
                assert response.status_code == 409, response.text
                assert says in response.json()["detail"]
                assert "Mallory" not in response.text
            assert await metric(client, "reckoning_encode_seconds_count") == loops  # nothing was encoded
            assert await metric(client, "reckoning_records_rejected_total") >= 3
            assert (await client.delete(f"/knowledge/{kid}", headers=ALICE)).status_code == 204  # still removable
            assert (await client.post("/encode", json={"facts": FACTS}, headers=ALICE)).status_code == 200

    asyncio.run(scenario())
