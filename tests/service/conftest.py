"""Real processes for the service tests: redis-server, uvicorn serving the app, a tiny checkpoint."""

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from benchmarks.processes import ApiProcess, RedisProcess, redis_api_env

REPO = Path(__file__).resolve().parents[2]
REDIS_CONF = REPO / "docker" / "redis.conf"

ALICE_KEY = "alice-key-0123456789"
BOB_KEY = "bob-key-9876543210"

# Small limits so every limit is reachable with small bodies (and below max_body_bytes).
SMALL_LIMITS = {
    "RECKONING_MAX_FACTS": "8",
    "RECKONING_MAX_FACT_CHARS": "200",
    "RECKONING_MAX_QUESTIONS": "4",
    "RECKONING_MAX_QUESTION_CHARS": "200",
    "RECKONING_MAX_CHOICES": "4",
    "RECKONING_MAX_CHOICE_CHARS": "20",
    "RECKONING_MAX_NEW_TOKENS": "8",
    "RECKONING_MAX_TTL_S": "3600",
    "RECKONING_MAX_BODY_BYTES": "8192",
    "RECKONING_MAX_ASK_TOKENS": "600",
}


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random GPT-2 checkpoint that declares the ProofWriter labels."""
    from reckoning_core.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("models") / "tiny-labels")


@pytest.fixture(scope="session")
def tiny_checkpoint_nolabels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny checkpoint without a label set: answers are generated."""
    from reckoning_core.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("models") / "tiny-free", labels=[])


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    with RedisProcess(tmp_path_factory.mktemp("redis"), config=REDIS_CONF) as server:
        yield server


@pytest.fixture(scope="session")
def redis_api(
    tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, redis_server: RedisProcess
) -> Iterator[ApiProcess]:
    """API on Redis with two tenants (alice, bob) and the small limits."""
    keys = {"alice": ALICE_KEY, "bob": BOB_KEY}
    env = redis_api_env(tiny_checkpoint, redis_server.url, keys, **SMALL_LIMITS)
    with ApiProcess(tmp_path_factory.mktemp("api-redis"), env, keys=keys) as api:
        yield api


@pytest.fixture(scope="session")
def embedded_api(
    tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint_nolabels: Path
) -> Iterator[ApiProcess]:
    """API on the embedded store (SQLite + LRU), no API keys, a model without a label set."""
    workdir = tmp_path_factory.mktemp("api-embedded")
    env = {
        "RECKONING_MODEL_DIR": str(tiny_checkpoint_nolabels),
        "RECKONING_SQLITE_PATH": str(workdir / "store" / "knowledge.sqlite3"),
    }
    with ApiProcess(workdir, env) as api:
        yield api


@pytest.fixture
def alice(redis_api: ApiProcess) -> Iterator[httpx.Client]:
    with redis_api.client(ALICE_KEY) as client:
        yield client


@pytest.fixture
def anonymous(redis_api: ApiProcess) -> Iterator[httpx.Client]:
    with redis_api.client() as client:
        yield client


@pytest.fixture
def redis_client(redis_server: RedisProcess) -> Iterator[redis.Redis]:
    client = redis_server.client()
    yield client
    client.close()


@pytest.fixture
def alice_clients(redis_api: ApiProcess) -> Iterator[Callable[[int], list[httpx.Client]]]:
    """Several independent connections as alice (for concurrency tests)."""
    made: list[httpx.Client] = []

    def make(n: int) -> list[httpx.Client]:
        clients = [redis_api.client(tenant="alice") for _ in range(n)]
        made.extend(clients)
        return clients

    yield make
    for client in made:
        client.close()
