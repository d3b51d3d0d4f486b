"""Test-only helpers: skip-or-fail, unique fact sets, a chunked body, a stored delta taken apart, the store contract,
Redis commands as MONITOR sees them."""

import contextlib
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest
import redis
import torch

from service.store import KnowledgeRecord, KnowledgeStore, Quota, QuotaExceeded, StoredDelta, Usage


def unavailable(reason: str) -> NoReturn:
    """Skip a test this machine cannot run (no shared data, no docker-compose); under CI=true, fail it instead:
    the CI machine must provide everything, so a missing piece is an error there, not a quiet skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: a CI machine must have it)", pytrace=False)
    pytest.skip(reason)


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
    """(blob, mac) of a delta in Redis; AssertionError when there is none."""
    blob, mac = redis_client.hmget(key, ["blob", "mac"])
    assert isinstance(blob, bytes) and isinstance(mac, bytes), f"no delta at {key}"
    return blob, mac.decode()


def plant_delta(redis_client: Any, key: str, blob: bytes, mac: str | None = None) -> None:
    """Overwrite a stored delta's blob (and MAC, when given) the way anyone who can write Redis could; the TTL
    stays (HSET keeps it)."""
    assert redis_client.exists(key), f"no delta at {key} to overwrite"
    redis_client.hset(key, mapping={"blob": blob, **({"mac": mac} if mac is not None else {})})


def sd(blob: bytes, mac: str = "mac") -> StoredDelta:
    """A StoredDelta, short."""
    return StoredDelta(blob, mac)


def sample_record(knowledge_id: str = "k" * 64, facts: list[str] | None = None) -> KnowledgeRecord:
    return KnowledgeRecord(
        knowledge_id=knowledge_id,
        facts=facts or ["Bob is kind.", "Ünïcödé is fine."],
        created=time.time(),
        model="tiny",
        fingerprint="f" * 64,
        recall=1.0,
        final_inner_loss=0.5,
        delta_bytes=3,
        ttl_s=60,
        encode_ms=1.0,
    )


async def exercise_store(store: KnowledgeStore) -> None:
    """The KnowledgeStore contract, identical for both implementations."""
    assert isinstance(store, KnowledgeStore)
    await store.ping()
    rec = sample_record()
    assert await store.get_knowledge("alice", rec.knowledge_id) is None
    assert await store.put_knowledge("alice", rec) is True
    assert await store.put_knowledge("alice", sample_record(facts=["other"])) is False  # first write wins
    assert await store.get_knowledge("alice", rec.knowledge_id) == rec
    assert await store.get_knowledge("bob", rec.knowledge_id) is None  # namespaces are separate

    assert (await store.delta_status("alice", rec.knowledge_id)).cached is False
    assert await store.delta_mac("alice", rec.knowledge_id) is None
    assert await store.knowledge_and_delta_mac("alice", rec.knowledge_id) == (rec, None)
    await store.put_delta("alice", rec.knowledge_id, sd(b"\x00blob\xff", "m1"), 30)
    assert await store.get_delta("alice", rec.knowledge_id) == sd(b"\x00blob\xff", "m1")
    assert await store.delta_mac("alice", rec.knowledge_id) == "m1"
    assert await store.knowledge_and_delta_mac("alice", rec.knowledge_id) == (rec, "m1")
    assert await store.knowledge_and_delta_mac("bob", rec.knowledge_id) == (None, None)
    status = await store.delta_status("alice", rec.knowledge_id)
    assert status.cached and status.ttl_s is not None and 25 < status.ttl_s <= 30
    assert await store.touch_delta("alice", rec.knowledge_id, 300)
    status = await store.delta_status("alice", rec.knowledge_id)
    assert status.ttl_s is not None and status.ttl_s > 250
    assert await store.get_delta("bob", rec.knowledge_id) is None
    assert await store.touch_delta("bob", rec.knowledge_id, 300) is False

    async with store.flight_lock("alice", rec.knowledge_id):  # free: taken at once
        pass

    assert await store.delete_knowledge("bob", rec.knowledge_id) is False
    assert await store.delete_knowledge("alice", rec.knowledge_id) is True
    assert await store.get_knowledge("alice", rec.knowledge_id) is None
    assert await store.get_delta("alice", rec.knowledge_id) is None
    assert await store.delete_knowledge("alice", rec.knowledge_id) is False

    # Quotas: usage follows creates and deletes; a set over a quota is refused and nothing is stored.
    assert await store.usage("carol") == Usage()
    first, second = sample_record("1" * 64), sample_record("2" * 64)
    assert await store.put_knowledge("carol", first, Quota(max_sets=1)) is True
    assert await store.usage("carol") == Usage(1, first.nbytes)
    assert await store.put_knowledge("carol", first, Quota(max_sets=1)) is False  # exists: no quota question
    with pytest.raises(QuotaExceeded, match="tenant_max_knowledge_sets=1"):
        await store.put_knowledge("carol", second, Quota(max_sets=1))
    with pytest.raises(QuotaExceeded, match="tenant_max_bytes"):
        await store.put_knowledge("carol", second, Quota(max_bytes=first.nbytes + 10))
    assert await store.get_knowledge("carol", second.knowledge_id) is None
    assert await store.put_knowledge("carol", second, Quota(max_sets=2)) is True
    assert await store.usage("carol") == Usage(2, first.nbytes + second.nbytes)
    assert await store.delete_knowledge("carol", first.knowledge_id) is True
    assert await store.usage("carol") == Usage(1, second.nbytes)
    assert await store.usage("alice") == Usage()


class FloatDevices(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the device of every floating-point tensor any op makes while active (`devices`, as strings)."""

    def __init__(self, kind_only: bool = False) -> None:
        super().__init__()
        self.kind_only = kind_only  # "cuda" rather than "cuda:0"
        self.devices: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                self.devices.add(t.device.type if self.kind_only else str(t.device))
        return out


@contextlib.contextmanager
def monitored(port: int, key_part: str) -> Iterator[list[tuple[str, ...]]]:
    """The commands the Redis on `port` runs while the block runs (MONITOR), in order, as (COMMAND, *args): those
    of every connection that touched a key containing `key_part`, keeping that connection's keyed commands and its
    MULTI/EXEC. Other connections (the rate limiter's, the test's own) are left out. Filled in when the block ends."""
    done = f"monitor-done-{secrets.token_hex(4)}"
    client = redis.Redis(host="127.0.0.1", port=port)  # no socket timeout: it waits for the next command
    by_connection: dict[str, list[tuple[str, ...]]] = {}
    ready = threading.Event()

    def watch() -> None:
        with client.monitor() as monitor:
            ready.set()
            while True:
                entry = monitor.next_command()
                words = (entry["command"].split() or [""])
                if done in words:
                    return
                connection = f"{entry['client_address']}:{entry['client_port']}"
                by_connection.setdefault(connection, []).append((words[0].upper(), *words[1:]))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert ready.wait(5)
    with redis.Redis(host="127.0.0.1", port=port) as probe:  # seen once MONITOR is on: nothing before it is lost
        marker = f"monitor-on-{secrets.token_hex(4)}"
        deadline = time.monotonic() + 5
        while not any(marker in w for ws in by_connection.values() for w in ws) and time.monotonic() < deadline:
            probe.echo(marker)
            time.sleep(0.05)
    seen: list[tuple[str, ...]] = []
    try:
        yield seen
    finally:
        with redis.Redis(host="127.0.0.1", port=port) as probe:
            probe.echo(done)
        watcher.join(10)
        client.close()
    for commands in by_connection.values():
        if any(key_part in arg for command in commands for arg in command):
            seen += [c for c in commands if c[0] in ("MULTI", "EXEC") or any(key_part in arg for arg in c)]


def assert_same_answers(got: list[Any], want: list[Any], abs_tol: float = 1e-5) -> None:
    """Two lists of reckoning_core Answers: the same labels, and every option's probability within abs_tol."""
    assert [a.answer for a in got] == [a.answer for a in want]
    for g, w in zip(got, want, strict=True):
        assert g.scores is not None and w.scores is not None
        for label in w.scores:
            assert g.scores[label] == pytest.approx(w.scores[label], abs=abs_tol)
