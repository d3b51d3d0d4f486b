"""Every knob of the HTTP service, read from RECKONING_* environment variables and a .env file."""

import ipaddress
import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from reckoning_core.config import DEFAULT_MODEL_DIR
from reckoning_core.device import DEFAULT_INNER_AUTOCAST, InnerAutocastSetting
from reckoning_core.serialization import DEFAULT_DELTA_DTYPE, DeltaDtype

_TENANT_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

# The namespace used when no API keys are configured (an open, single-tenant server). No configured tenant may
# take this name, so a key can never open what was stored anonymously (or the other way round).
PUBLIC_TENANT = "public"


def _default_sqlite_path() -> Path:
    # Facts are the system of record, so they go to a data directory, not a cache directory.
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "reckoning" / "knowledge.sqlite3"


class Settings(BaseSettings):
    """Service settings; every field can be set as RECKONING_<FIELD> (upper case)."""

    model_config = SettingsConfigDict(
        env_prefix="RECKONING_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # RECKONING_API_KEYS= (how compose passes an unset variable) means "not set".
        env_ignore_empty=True,
        # A bad RECKONING_API_KEYS must not print the keys in the startup error.
        hide_input_in_errors=True,
    )

    # --- serving ---
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    model_dir: Path = DEFAULT_MODEL_DIR
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    keep_alive_s: int = Field(
        default=30, ge=1, description="idle keep-alive of a client connection; longer than clients' own idle "
        "expiry (httpx: 5 s), so the client closes first and never sends on a connection the server is closing"
    )

    # --- engine ---
    device: str = Field(
        default="auto", description="where torch runs: auto (CUDA when torch sees a GPU, else cpu), cpu, cuda, cuda:N"
    )
    inner_autocast: InnerAutocastSetting = Field(
        default=DEFAULT_INNER_AUTOCAST,
        description="mixed precision of the encode's inner loop (fast weights stay fp32): auto = bf16 on a CUDA GPU "
        "that supports it (else fp16) or on a CPU with native bf16 (avx512_bf16/amx_bf16), else off; off, bf16, fp16",
    )
    torch_threads: int | None = Field(default=None, ge=1, description="torch intra-op threads; None = torch default")
    max_concurrent_encodes: int = Field(
        default=1, ge=1, description="encodes admitted to the torch pool at once, so asks are not queued behind them"
    )
    max_pending_encodes: int = Field(
        default=16,
        ge=1,
        description="inner loops queued or running at once; past it an encode (or an ask that needs a re-encode) "
        "gets 429 with Retry-After. Measured on the shipped model: a full theory encodes in 0.33 s on an idle "
        "2-core machine (results/bench.md), 2.3 s under this machine's shared load; 16 queued is then 5 s "
        "(idle) to 37 s (loaded) of wait, about one client timeout at worst",
    )
    max_ask_tokens: int = Field(
        default=32768,
        ge=1,
        description="work bound of one /ask: prompt tokens summed over questions x choices (x 1 + max_new_tokens "
        "when generating); over it is a 413. 256 ProofWriter questions with 3 labels need ~20k",
    )
    delta_dtype: DeltaDtype = Field(
        default=DEFAULT_DELTA_DTYPE, description="precision of a stored delta (see reckoning_core.serialization)"
    )
    delta_rank: int = Field(
        default=32,
        ge=0,
        description="store each weight-matrix update as a rank-r SVD factorisation (0 = dense), answered through "
        "its factors (no merged copy per knowledge set); 32 keeps the shipped models' dev accuracy within 0.6 "
        "points at a sixth of the bytes (results/eval/delta-form/, delta_options in results/bench.json)",
    )
    load_workers: int = Field(
        default=1,
        ge=0,
        le=8,
        description="threads that verify, deserialize and merge stored deltas beside the torch worker "
        "(0 = on the torch worker); see results/ab-load-workers.json",
    )
    weight_cache_bytes: int | None = Field(
        default=None,
        ge=0,
        description="byte bound of the in-process LRU of ready weights (0 = off); unset = an eighth of the memory "
        "the process may use (cgroup limit, else RAM), between 256 MiB and 2 GiB (service.memory_budget)",
    )

    # --- store ---
    redis_url: str | None = Field(default=None, description="redis://... ; unset = embedded SQLite + in-memory LRU")
    sqlite_path: Path = Field(default_factory=_default_sqlite_path)
    delta_cache_bytes: int = Field(default=512 * 1024 * 1024, ge=0, description="byte bound of the embedded delta LRU")
    delta_ttl_s: int = Field(default=24 * 3600, ge=1, description="default TTL of a cached delta")
    store_timeout_s: float = Field(default=1.0, gt=0, description="socket/connect timeout of the store: fast 503s")
    retry_after_s: int = Field(default=5, ge=1, description="Retry-After sent with 503 when the store is unreachable")
    key_prefix: str = "reckoning"
    flight_lock_ttl_s: float = Field(
        default=5.0,
        gt=0,
        description="lease of the Redis lock that makes a (re-)encode single-flight across replicas: the holder "
        "renews it every third of this while it encodes, so a lock whose holder died (or could not release it "
        "because Redis was down) frees within this time",
    )
    flight_lock_wait_s: float = Field(
        default=60.0,
        gt=0,
        description="how long a replica waits for another replica's encode of the same set before running its own",
    )

    # --- request limits (defaults fit a full ProofWriter theory and all its questions) ---
    max_facts: int = Field(default=256, ge=1)
    max_fact_chars: int = Field(default=1000, ge=1)
    max_questions: int = Field(default=256, ge=1)
    max_question_chars: int = Field(default=1000, ge=1)
    max_choices: int = Field(default=32, ge=1)
    max_choice_chars: int = Field(default=200, ge=1)
    max_new_tokens: int = Field(default=64, ge=1, description="upper bound a request may ask for")
    default_new_tokens: int = Field(default=16, ge=1)
    max_ttl_s: int = Field(default=30 * 24 * 3600, ge=1)
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)

    # --- per-tenant limits (limits' syntax, e.g. "100/second", "6000/minute"; "none" = off) ---
    rate_limit: str | None = Field(default="6000/minute", description="requests per tenant to the knowledge routes")
    encode_rate_limit: str | None = Field(default="600/minute", description="POST /encode per tenant")
    tenant_max_knowledge_sets: int = Field(
        default=100_000, ge=0, description="stored knowledge sets per tenant (0 = no quota)"
    )
    tenant_max_bytes: int = Field(
        default=1024**3, ge=0, description="bytes of stored facts records per tenant (0 = no quota)"
    )

    # --- security ---
    api_keys: dict[SecretStr, str] = Field(
        default_factory=dict,
        description='JSON object {"<api key>": "<tenant>"}; empty = no authentication (loopback only, see '
        "allow_anonymous)",
    )
    allow_anonymous: bool = Field(
        default=False, description="serve without API keys on a non-loopback host (everyone is one tenant)"
    )
    secret_key: SecretStr | None = Field(
        default=None,
        min_length=32,
        description="key of the MACs that bind stored deltas and facts records to tenant, id and model; required "
        "with Redis (every replica needs the same one); unset with the embedded store = generated once beside "
        "the SQLite file",
    )

    @field_validator("api_keys")
    @classmethod
    def _tenants_are_key_safe(cls, value: dict[SecretStr, str]) -> dict[SecretStr, str]:
        # Tenants become part of store keys, so they must not contain separators.
        for tenant in value.values():
            if not _TENANT_RE.match(tenant):
                raise ValueError(f"tenant name {tenant!r} must match {_TENANT_RE.pattern}")
            if tenant == PUBLIC_TENANT:
                raise ValueError(
                    f"tenant name {PUBLIC_TENANT!r} is reserved for the anonymous namespace; pick another name"
                )
        return value

    @field_validator("rate_limit", "encode_rate_limit")
    @classmethod
    def _rate_limit_parses(cls, value: str | None) -> str | None:
        if value is None or value.strip().lower() in {"", "none", "off", "0"}:
            return None
        from limits import parse_many  # imported here: settings load before anything else

        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a rate limit like '100/second' or '6000/minute'") from exc
        return value

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys)

    @property
    def loopback_only(self) -> bool:
        """True when the server listens on a loopback address only (not reachable from other machines)."""
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a hostname: it may resolve to anything
        return False
