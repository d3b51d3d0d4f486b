"""Keyed MACs bind a delta to its bytes, tenant, id, model and encode config, and a record to its tenant and id;
the secret comes from the settings, or (embedded store only) from a key file made once."""

import json
import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from service.integrity import ForgedDelta, ForgedRecord, Signer
from service.secret import MissingSecret, key_file, resolve_secret
from service.settings import Settings
from service.store import KnowledgeRecord

SIGNER = Signer(b"s" * 32)
RECORD = KnowledgeRecord("k" * 64, ["Bob is kind."], 1.5, "tiny", "f" * 64, 1.0, 0.25, 10, 60, 3.0)
DELTA = ("alice", "k" * 64, "f" * 64, "e" * 64, b"\x00payload\xff")


def test_a_delta_mac_verifies_only_for_exactly_what_it_was_made_for() -> None:
    mac = SIGNER.delta_mac(*DELTA)
    SIGNER.check_delta(*DELTA, mac)
    for i, other in enumerate(("bob", "j" * 64, "0" * 64, "1" * 64, b"\x00payload\xfe")):
        changed = list(DELTA)
        changed[i] = other
        with pytest.raises(ForgedDelta):
            SIGNER.check_delta(*changed, mac)  # type: ignore[arg-type]
    with pytest.raises(ForgedDelta):
        Signer(b"t" * 32).check_delta(*DELTA, mac)  # another server's key
    with pytest.raises(ForgedDelta):
        SIGNER.check_delta(*DELTA, "")
    # Fields are length-framed: moving bytes between tenant and id does not keep the MAC.
    assert SIGNER.delta_mac("ab", "c", *DELTA[2:]) != SIGNER.delta_mac("a", "bc", *DELTA[2:])


def test_a_record_mac_binds_every_field_the_tenant_and_the_id() -> None:
    signed = SIGNER.sign_record("alice", RECORD)
    SIGNER.check_record("alice", RECORD.knowledge_id, signed)
    SIGNER.check_record("alice", RECORD.knowledge_id, KnowledgeRecord.from_json(signed.to_json()))  # round trip
    with pytest.raises(ForgedRecord, match="MAC does not verify"):
        SIGNER.check_record("bob", RECORD.knowledge_id, signed)
    with pytest.raises(ForgedRecord, match="another knowledge set"):
        SIGNER.check_record("alice", "j" * 64, signed)
    with pytest.raises(ForgedRecord, match="no MAC"):
        SIGNER.check_record("alice", RECORD.knowledge_id, RECORD)
    for field, value in (("facts", ["Mallory is trusted."]), ("ttl_s", 1), ("fingerprint", "0" * 64)):
        with pytest.raises(ForgedRecord, match="MAC does not verify"):
            SIGNER.check_record("alice", RECORD.knowledge_id, replace(signed, **{field: value}))


def test_the_secret_key_is_required_with_redis(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, redis_url="redis://127.0.0.1:1/0", sqlite_path=tmp_path / "k.sqlite3")  # type: ignore[call-arg]
    with pytest.raises(MissingSecret, match="RECKONING_SECRET_KEY") as refused:
        resolve_secret(settings)
    assert "secrets.token_hex" in str(refused.value)
    keyed = Settings(_env_file=None, redis_url="redis://x:1/0", secret_key="k" * 32)  # type: ignore[call-arg]
    assert resolve_secret(keyed) == b"k" * 32
    with pytest.raises(ValueError, match="at least 32"):
        Settings(_env_file=None, secret_key="short")  # type: ignore[call-arg]


def test_the_embedded_store_makes_its_key_once_beside_the_database(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, sqlite_path=tmp_path / "data" / "k.sqlite3")  # type: ignore[call-arg]
    first = resolve_secret(settings)
    path = key_file(settings)
    assert path == tmp_path / "data" / "k.sqlite3.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(first) >= 32 and resolve_secret(settings) == first  # the same key after a restart
    path.write_text("short\n")
    with pytest.raises(MissingSecret, match="damaged"):
        resolve_secret(settings)
    assert json.dumps(first.decode())  # printable: it can be copied into RECKONING_SECRET_KEY
