"""Every knob of the HTTP service, read from RECKONING_* environment variables and a .env file."""

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from reckoning_core.serialization import DEFAULT_DELTA_DTYPE, DeltaDtype

_TENANT_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

# The namespace used when no API keys are configured (an open, single-tenant server).
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
    model_dir: Path = Path("models/reckoning-proofwriter")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    # --- engine ---
    device: str = Field(
        default="auto", description="where torch runs: auto (CUDA when torch sees a GPU, else cpu), cpu, cuda, cuda:N"
    )
    inner_autocast: Literal["off", "bf16", "fp16"] = Field(
        default="off", description="mixed precision of the encode's inner loop (for CUDA; fast weights stay fp32)"
    )
    torch_threads: int | None = Field(default=None, ge=1, description="torch intra-op threads; None = torch default")
    max_concurrent_encodes: int = Field(
        default=1, ge=1, description="encodes admitted to the torch pool at once, so asks are not queued behind them"
    )
    delta_dtype: DeltaDtype = Field(
        default=DEFAULT_DELTA_DTYPE, description="precision of a stored delta (see reckoning_core.serialization)"
    )
    delta_rank: int = Field(
        default=0,
        ge=0,
        description="store each weight-matrix update as a rank-r SVD factorisation (0 = dense); "
        "see delta_options in results/bench.json for bytes against accuracy",
    )
    load_workers: int = Field(
        default=1,
        ge=0,
        le=8,
        description="threads that verify, deserialize and merge stored deltas beside the torch worker "
        "(0 = on the torch worker); see results/ab-load-workers.json",
    )
    weight_cache_bytes: int = Field(
        default=256 * 1024 * 1024, ge=0, description="byte bound of the in-process pre-merged weight LRU (0 = off)"
    )

    # --- store ---
    redis_url: str | None = Field(default=None, description="redis://... ; unset = embedded SQLite + in-memory LRU")
    sqlite_path: Path = Field(default_factory=_default_sqlite_path)
    delta_cache_bytes: int = Field(default=512 * 1024 * 1024, ge=0, description="byte bound of the embedded delta LRU")
    delta_ttl_s: int = Field(default=24 * 3600, ge=1, description="default TTL of a cached delta")
    store_timeout_s: float = Field(default=1.0, gt=0, description="socket/connect timeout of the store: fast 503s")
    retry_after_s: int = Field(default=5, ge=1, description="Retry-After sent with 503 when the store is unreachable")
    key_prefix: str = "reckoning"

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

    # --- security ---
    api_keys: dict[SecretStr, str] = Field(
        default_factory=dict,
        description='JSON object {"<api key>": "<tenant>"}; empty = no authentication',
    )

    @field_validator("api_keys")
    @classmethod
    def _tenants_are_key_safe(cls, value: dict[SecretStr, str]) -> dict[SecretStr, str]:
        # Tenants become part of store keys, so they must not contain separators.
        for tenant in value.values():
            if not _TENANT_RE.match(tenant):
                raise ValueError(f"tenant name {tenant!r} must match {_TENANT_RE.pattern}")
        return value

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys)
