"""Settings (env, defaults that fit ProofWriter) and API-key auth, in process."""

import json
import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from service.auth import ApiKeyAuth
from service.schemas import request_models
from service.settings import PUBLIC_TENANT, Settings


def test_defaults_fit_a_full_proofwriter_theory_with_all_its_questions(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("RECKONING_"):
            monkeypatch.delenv(name)
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.max_facts >= 256 and s.max_questions >= 256
    assert s.max_fact_chars >= 500 and s.max_question_chars >= 500
    # The largest theory body the count/char limits allow must pass the byte limit.
    assert s.max_body_bytes >= s.max_facts * (s.max_fact_chars + 4)
    assert s.model_dir.as_posix() == "models/reckoning-full-k2"
    assert s.redis_url is None and not s.auth_enabled
    encode_request, ask_request = request_models(s)
    theory = [f"Fact {i} is about someone being kind and big and round." for i in range(200)]
    assert len(encode_request(facts=theory).facts) == 200
    ask_request(knowledge_id="a" * 64, questions=[f"Q{i} is kind." for i in range(256)])


def test_settings_come_from_env_and_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECKONING_REDIS_URL", "redis://example:6379/1")
    monkeypatch.setenv("RECKONING_API_KEYS", json.dumps({"k1": "alice", "k2": "bob"}))
    monkeypatch.setenv("RECKONING_MAX_FACTS", "12")
    env_file = tmp_path / ".env"
    env_file.write_text("RECKONING_PORT=9123\nRECKONING_MAX_FACTS=99\n")
    s = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert s.redis_url == "redis://example:6379/1"
    assert s.max_facts == 12  # the environment beats .env
    assert s.port == 9123
    assert {k.get_secret_value(): t for k, t in s.api_keys.items()} == {"k1": "alice", "k2": "bob"}
    assert "k1" not in repr(s)  # keys never show up in logs


def test_empty_api_keys_env_means_no_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECKONING_API_KEYS", "")
    assert Settings(_env_file=None).api_keys == {}  # type: ignore[call-arg]


def test_tenant_names_must_be_key_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECKONING_API_KEYS", json.dumps({"secret-key": "al:ice"}))
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert "secret-key" not in str(info.value)


def test_api_key_auth() -> None:
    auth = ApiKeyAuth({SecretStr("key-a"): "alice", SecretStr("key-b"): "bob"})
    assert auth.enabled
    assert auth.tenant_for("key-a") == "alice"
    assert auth.tenant_for("key-b") == "bob"
    for wrong in (None, "", "key-", "key-a ", "KEY-A", "key-c", "\udcff"):
        assert auth.tenant_for(wrong) is None, wrong


def test_no_keys_means_one_public_tenant() -> None:
    auth = ApiKeyAuth({})
    assert not auth.enabled
    assert auth.tenant_for(None) == PUBLIC_TENANT
    assert auth.tenant_for("anything") == PUBLIC_TENANT
