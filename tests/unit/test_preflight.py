"""Secure by default: no anonymous server on a reachable host unless asked for, no Redis without a MAC secret,
and no tenant can share the anonymous namespace."""

import json
import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from service import preflight
from service.settings import PUBLIC_TENANT, Settings, is_loopback


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type, call-arg]


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True),
                                                 ("::1", True), ("[::1]", True), ("0.0.0.0", False), ("::", False),
                                                 ("10.1.2.3", False), ("api.example.com", False)])  # fmt: skip
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_anonymous_serving_is_refused_on_a_reachable_host_unless_opted_in() -> None:
    assert preflight.refusals(_settings()) == []  # 127.0.0.1, no keys: the README's quick start
    refused = preflight.refusals(_settings(host="0.0.0.0"))
    assert len(refused) == 1 and "RECKONING_API_KEYS" in refused[0] and "RECKONING_ALLOW_ANONYMOUS=1" in refused[0]
    assert preflight.refusals(_settings(host="0.0.0.0", allow_anonymous=True)) == []
    assert preflight.refusals(_settings(host="0.0.0.0", api_keys={"k" * 20: "alice"})) == []


def test_a_tenant_cannot_take_the_anonymous_namespace() -> None:
    with pytest.raises(ValidationError, match="reserved for the anonymous namespace"):
        _settings(api_keys={"k" * 20: PUBLIC_TENANT})


def _serve(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RECKONING_")}
    return subprocess.run([sys.executable, "-m", "reckoning_cli", "serve", *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_reckoning_serve_on_0_0_0_0_without_keys_exits_non_zero_saying_how_to_set_them(tmp_path: object) -> None:
    done = _serve("--host", "0.0.0.0", "--port", "9", env={})
    assert done.returncode == 2
    assert "refusing to serve without API keys on 0.0.0.0" in done.stderr
    assert "RECKONING_API_KEYS" in done.stderr and "RECKONING_ALLOW_ANONYMOUS=1" in done.stderr


def test_reckoning_serve_with_redis_and_no_secret_key_exits_non_zero() -> None:
    keys = json.dumps({"k" * 20: "alice"})
    done = _serve("--port", "9", env={"RECKONING_REDIS_URL": "redis://127.0.0.1:9/0", "RECKONING_API_KEYS": keys})
    assert done.returncode == 2 and "RECKONING_SECRET_KEY is not set" in done.stderr
