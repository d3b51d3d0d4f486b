"""The Python clients and the CLI functions against a running server (embedded store)."""

import asyncio
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from benchmarks.processes import ApiProcess, free_port
from service import AsyncReckoningClient, ReckoningAPIError, ReckoningClient
from service.cli import ask_cmd, encode_cmd, read_facts
from tests.support import unique_facts

REPO = Path(__file__).resolve().parents[2]


def test_client_round_trip(embedded_api: ApiProcess) -> None:
    facts = unique_facts("client")
    with ReckoningClient(embedded_api.url) as client:
        encoded = client.encode(facts, ttl_s=600)
        assert encoded.n_facts == len(facts) and not encoded.cached
        assert client.encode(facts).cached
        answered = client.ask(encoded.knowledge_id, "Who is kind?", max_new_tokens=4)
        assert len(answered.answers) == 1 and answered.answers[0].scores is None
        batch = client.ask(encoded.knowledge_id, ["Is Bob kind?", "Is Anne nice?"], choices=["yes", "no"])
        assert [set(a.scores or {}) for a in batch.answers] == [{"yes", "no"}] * 2
        info = client.get(encoded.knowledge_id, include_facts=True)
        assert info.facts == sorted(facts) and info.delta_cached
        client.delete(encoded.knowledge_id)
        with pytest.raises(ReckoningAPIError) as error:
            client.get(encoded.knowledge_id)
        assert error.value.status_code == 404
        assert error.value.detail == "unknown knowledge_id"
        with pytest.raises(ReckoningAPIError) as error:
            client.encode([])
        assert error.value.status_code == 422


def test_async_client_round_trip(embedded_api: ApiProcess) -> None:
    async def run() -> None:
        async with AsyncReckoningClient(embedded_api.url) as client:
            encoded = await client.encode(unique_facts("async"))
            answers = await asyncio.gather(*(client.ask(encoded.knowledge_id, f"Q{i}?") for i in range(4)))
            assert [a.answers[0].question for a in answers] == [f"Q{i}?" for i in range(4)]
            assert (await client.get(encoded.knowledge_id)).n_facts == encoded.n_facts
            await client.delete(encoded.knowledge_id)

    asyncio.run(run())


def test_client_sends_the_api_key(redis_api: ApiProcess) -> None:
    with ReckoningClient(redis_api.url, api_key=redis_api.keys["alice"]) as client:
        assert client.encode(unique_facts("client-key")).n_facts == 3
    with ReckoningClient(redis_api.url, api_key="wrong") as client, pytest.raises(ReckoningAPIError) as error:
        client.encode(["Bob is kind."])
    assert error.value.status_code == 401


def test_encode_and_ask_commands(
    embedded_api: ApiProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    facts = unique_facts("cli")
    path = tmp_path / "facts.txt"
    path.write_text("# a theory\n" + "\n".join(facts) + "\n\n")
    assert encode_cmd(path, url=embedded_api.url) == 0
    encoded = json.loads(capsys.readouterr().out)
    assert encoded["n_facts"] == len(facts)

    assert ask_cmd(encoded["knowledge_id"], "Who is kind?", url=embedded_api.url) == 0
    answered = json.loads(capsys.readouterr().out)
    assert answered["knowledge_id"] == encoded["knowledge_id"]
    assert len(answered["answers"]) == 1

    assert ask_cmd("0" * 64, "Who?", url=embedded_api.url) == 1
    assert "404" in capsys.readouterr().err
    assert encode_cmd(tmp_path / "missing.txt", url=embedded_api.url) == 2
    assert encode_cmd(path, url=f"http://127.0.0.1:{free_port()}") == 2
    assert "cannot reach" in capsys.readouterr().err


def test_read_facts_formats(tmp_path: Path) -> None:
    as_json = tmp_path / "facts.json"
    as_json.write_text(json.dumps(["Bob is kind.", "Anne is red."]))
    assert read_facts(as_json) == ["Bob is kind.", "Anne is red."]
    as_object = tmp_path / "theory.json"
    as_object.write_text(json.dumps({"facts": ["Bob is kind."]}))
    assert read_facts(as_object) == ["Bob is kind."]
    assert read_facts("-", stdin=io.StringIO("Bob is kind.\n  # comment\nAnne is red.\n")) == [
        "Bob is kind.",
        "Anne is red.",
    ]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"facts": [1]}))
    with pytest.raises(ValueError):
        read_facts(bad)


def test_serve_runs_the_app_with_host_port_and_model(tmp_path: Path, tiny_checkpoint: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECKONING_")}
    env.update(
        {
            "OMP_NUM_THREADS": "1",
            "RECKONING_SQLITE_PATH": str(tmp_path / "k.sqlite3"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
    )
    code = f"from service.cli import serve; serve(host='127.0.0.1', port={port}, model={str(tiny_checkpoint)!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, "serve() exited"
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "serve() never answered"
                time.sleep(0.2)
        assert ready.status_code == 200
        assert ready.json()["model"] == tiny_checkpoint.name
    finally:
        proc.terminate()
        proc.wait(30)
