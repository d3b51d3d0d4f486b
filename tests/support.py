"""Test-only helpers: unique fact sets, a chunked request body, and taking a stored delta blob apart."""

import json
import time
from collections.abc import Iterator
from typing import Any


def chunked_facts_body(n_facts: int, fact_chars: int) -> Iterator[bytes]:
    """A {"facts": [...]} JSON body as a generator: httpx sends it chunked, without a Content-Length,
    so only a server that counts the bytes it receives can enforce its body limit."""
    yield b'{"facts": ['
    for _ in range(n_facts):
        yield b'"' + b"w" * fact_chars + b'",'
    yield b'"end"]}'


def unique_facts(tag: str, n: int = 3) -> list[str]:
    """Facts no other test uses, so ids never collide across tests sharing a server."""
    stamp = f"{tag}{time.monotonic_ns() % 10**9}"
    names = ["Anne", "Bob", "Carol", "Dave", "Erin", "Fred", "Gary", "Harry"]
    return [f"{names[i % len(names)]} {stamp} is kind." for i in range(n - 1)] + [
        f"If someone {stamp} is kind then they are nice."
    ]


def delta_header(blob: bytes) -> tuple[dict[str, Any], bytes]:
    """Split a safetensors blob into its JSON header and the tensor payload."""
    size = int.from_bytes(blob[:8], "little")
    return json.loads(blob[8 : 8 + size]), blob[8 + size :]


def with_header(header: dict[str, Any], payload: bytes) -> bytes:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)  # safetensors keeps the payload 8-byte aligned
    return len(raw).to_bytes(8, "little") + raw + payload


def served_model(client: Any) -> str:
    """The fingerprint of the model a server serves (GET /readyz): RedisStore keys its deltas by it."""
    fingerprint: str = client.get("/readyz").json()["fingerprint"]
    return fingerprint


def stored_delta(redis_client: Any, key: str) -> tuple[bytes, str]:
    """(blob, mac) of a stored delta; AssertionError when there is none."""
    blob, mac = redis_client.hmget(key, ["blob", "mac"])
    assert isinstance(blob, bytes) and isinstance(mac, bytes), f"no delta at {key}"
    return blob, mac.decode()


def plant_delta(redis_client: Any, key: str, blob: bytes, mac: str | None = None) -> None:
    """Overwrite a stored delta's blob (and MAC, when given) the way anyone who can write Redis could; the TTL
    stays (HSET keeps it)."""
    assert redis_client.exists(key), f"no delta at {key} to overwrite"
    redis_client.hset(key, mapping={"blob": blob, **({"mac": mac} if mac is not None else {})})
