"""A stored delta's cold load reads its multi-MB blob once: the MAC check, then no payload checksum."""

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from reckoning_core import serialization
from service.engine import Engine
from service.integrity import ForgedDelta, Signer

FACTS = ["The dog is red.", "If something is red then it is big."]
SIGNER = Signer(b"s" * 32)


def test_an_authenticated_load_skips_the_checksum_and_a_forged_one_is_refused(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digests: list[str] = []
    digest = serialization._digest

    def counting(tensors: dict, algorithm: str = serialization.CHECKSUM) -> str:
        digests.append(algorithm)
        return digest(tensors, algorithm)

    monkeypatch.setattr(serialization, "_digest", counting)
    engine = Engine.load(tiny_checkpoint, torch_threads=1)
    ids = ("alice", "k" * 64, engine.fingerprint, engine.encode_hash)

    def mac_check(blob: bytes, mac: str) -> Callable[[], None]:
        return lambda: SIGNER.check_delta(*ids, blob, mac)

    async def run() -> None:
        blob = (await engine.encode(FACTS)).blob
        mac = SIGNER.delta_mac(*ids, blob)
        digests.clear()
        plain = await engine.load_weights(blob)  # no MAC: the checksum is the integrity check
        assert len(digests) == 1
        digests.clear()
        authenticated = await engine.load_weights(blob, mac_check(blob, mac))
        assert digests == []  # the MAC read every byte; nothing hashes the blob a second time
        assert plain.nbytes == authenticated.nbytes
        for name, tensor in plain.params.items():
            assert bool((tensor == authenticated.params[name]).all()), name

        # Fail loudly still: a blob the MAC does not cover is refused before anything is deserialized.
        corrupted = bytearray(blob)
        corrupted[-5] ^= 0xFF
        with pytest.raises(ForgedDelta):
            await engine.load_weights(bytes(corrupted), mac_check(bytes(corrupted), mac))
        with pytest.raises(serialization.ChecksumMismatch):
            await engine.load_weights(bytes(corrupted))

    try:
        asyncio.run(run())
    finally:
        engine.close()
