"""The app in process (httpx ASGITransport, lifespan run): a real tiny model and the embedded store, no sockets."""

import json
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import httpx

from service.settings import Settings
from tests.unit import inprocess

T = TypeVar("T")
FACTS = ["Bob is big.", "If someone is big then they are rough."]
KEY = "unit-test-key-0001"


def serve(settings: Settings, scenario: Callable[[httpx.AsyncClient], Awaitable[T]], key: str | None = KEY) -> T:
    return inprocess.serve(settings, scenario, key)


def settings(tiny_gpt2: Path, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        model_dir=tiny_gpt2,
        sqlite_path=tmp_path / "k.sqlite3",
        api_keys={KEY: "alice"},
        torch_threads=1,
    )


def test_encode_ask_forget_and_encode_again(tiny_gpt2: Path, tmp_path: Path) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        first = (await client.post("/encode", json={"facts": FACTS})).json()
        assert first["cached"] is False and first["n_facts"] == 2
        kid = first["knowledge_id"]
        again = (await client.post("/encode", json={"facts": FACTS[::-1]})).json()
        assert again["knowledge_id"] == kid and again["cached"] is True
        asked = await client.post("/ask", json={"knowledge_id": kid, "questions": ["Bob is rough.", "Bob is small."]})
        assert asked.status_code == 200
        assert [set(a["scores"]) for a in asked.json()["answers"]] == [{"True", "False", "Unknown"}] * 2
        info = (await client.get(f"/knowledge/{kid}", params={"include_facts": "true"})).json()
        assert info["delta_cached"] is True and info["facts"] == sorted(FACTS)

        assert (await client.delete(f"/knowledge/{kid}")).status_code == 204
        assert (await client.post("/ask", json={"knowledge_id": kid, "question": "Bob?"})).status_code == 404
        assert (await client.post("/encode", json={"facts": FACTS})).json()["cached"] is False  # a fresh encode

    serve(settings(tiny_gpt2, tmp_path), scenario)


def test_a_stored_record_of_an_unknown_version_is_a_500_that_says_so(tiny_gpt2: Path, tmp_path: Path) -> None:
    cfg = settings(tiny_gpt2, tmp_path)

    async def encode(client: httpx.AsyncClient) -> str:
        kid: str = (await client.post("/encode", json={"facts": FACTS})).json()["knowledge_id"]
        return kid

    kid = serve(cfg, encode)
    with sqlite3.connect(cfg.sqlite_path) as db:  # as a newer server might have written it
        (raw,) = db.execute("SELECT record FROM knowledge WHERE knowledge_id = ?", (kid,)).fetchone()
        newer = json.dumps({**json.loads(raw), "version": 2})
        db.execute("UPDATE knowledge SET record = ? WHERE knowledge_id = ?", (newer, kid))

    async def read(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get(f"/knowledge/{kid}")

    response = serve(cfg, read)
    assert response.status_code == 409  # an answer that says what is wrong, never a 500
    assert "version 2" in response.json()["detail"]


def test_docs_schema_and_probes_are_open_and_everything_else_needs_a_key(tiny_gpt2: Path, tmp_path: Path) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        for path in ("/docs", "/openapi.json", "/healthz", "/readyz", "/metrics"):
            assert (await client.get(path)).status_code == 200, path
        for method, path in (("POST", "/encode"), ("POST", "/ask"), ("GET", "/knowledge/" + "0" * 64)):
            response = await client.request(method, path, json={})
            assert response.status_code == 401, (path, response.text)

    serve(settings(tiny_gpt2, tmp_path), scenario, key=None)
