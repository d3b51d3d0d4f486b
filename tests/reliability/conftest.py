"""Reliability suite: the --soak-seconds option, the results/reliability.json writer and the real-process stack."""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rel_support import KEYS, Report, Stack

from benchmarks.processes import ApiProcess, RedisProcess, redis_api_env

REPO = Path(__file__).resolve().parents[2]
# Where the suite writes its report: the committed results/reliability.json only for a soak asked for
# explicitly (--soak-seconds / RECKONING_SOAK_SECONDS), so a plain `pytest` never overwrites that evidence;
# RECKONING_RELIABILITY_REPORT points any run elsewhere.
SOAK_REPORT = REPO / "results" / "reliability.json"
CI_REPORT = REPO / "build" / "reliability-ci.json"
DEFAULT_SOAK_SECONDS = 20.0  # the CI run; pass --soak-seconds 1800 (or RECKONING_SOAK_SECONDS) for the long soak

REPORT = Report()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("reliability").addoption(
        "--soak-seconds",
        type=float,
        default=None,
        help=f"length of the load/soak phase (default: $RECKONING_SOAK_SECONDS or {DEFAULT_SOAK_SECONDS:g})",
    )


def _soak_asked(config: pytest.Config) -> str | None:
    # getoption with a default: run from the repo root, this conftest is not an initial one and the option is unknown.
    value = config.getoption("soak_seconds", default=None) or os.environ.get("RECKONING_SOAK_SECONDS")
    return str(value) if value else None


def soak_seconds(config: pytest.Config) -> float:
    value = _soak_asked(config)
    return float(value) if value else DEFAULT_SOAK_SECONDS


def report_path(config: pytest.Config) -> Path:
    chosen = os.environ.get("RECKONING_RELIABILITY_REPORT")
    return Path(chosen) if chosen else SOAK_REPORT if _soak_asked(config) else CI_REPORT


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak: runs for --soak-seconds; its timeout grows with it")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # pyproject's timeout (600 s) is per test; the soak test needs its own length plus audit time on top.
    budget = 2 * soak_seconds(config) + 600
    for item in items:
        if item.get_closest_marker("soak"):
            item.add_marker(pytest.mark.timeout(budget))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.outcome != "passed":
        REPORT.outcomes[report.outcome] += 1
        REPORT.modules.add(report.nodeid.split("::")[0].rsplit("/", 1)[-1])


def pytest_sessionfinish(session: pytest.Session) -> None:
    if REPORT.outcomes:  # only when reliability tests actually ran
        REPORT.sections["git_commit"] = _git_commit()
        REPORT.write(report_path(session.config), soak_seconds=soak_seconds(session.config))


def _git_commit() -> str | None:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.decode().strip() + ("+dirty" if dirty.stdout.strip() else "") if head.returncode == 0 else None


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def report() -> Report:
    return REPORT


@pytest.fixture(scope="session")
def soak(pytestconfig: pytest.Config) -> float:
    return soak_seconds(pytestconfig)


@pytest.fixture(scope="session")
def other_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same architecture and labels as tiny_gpt2, different weights: another model fingerprint."""
    from reckoning_core.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("ckpt-other") / "tiny-other", seed=1)


def api_env(model_dir: Path, redis_url: str, **extra: str) -> dict[str, str]:
    """The settings of every API process of the reliability stack (replicas share them, secret key included)."""
    settings = {
        "RECKONING_RETRY_AFTER_S": "2",
        # The pre-merged weight LRU is byte-bounded by design; kept small (~15 tiny-model sets) so the
        # soak's warm-up fills it and its RSS bound still measures leaks, not a cache filling up.
        "RECKONING_WEIGHT_CACHE_BYTES": str(2 * 1024 * 1024),
        # The load generators send ~60 requests/s per tenant across replicas: the per-tenant rate limits are
        # tested on their own (tests/unit/test_http_guards.py); here they must not shape the load.
        "RECKONING_RATE_LIMIT": "100000/minute",
        "RECKONING_ENCODE_RATE_LIMIT": "100000/minute",
        "RECKONING_LOG_LEVEL": "warning",
    }
    return redis_api_env(model_dir, redis_url, KEYS, **(settings | extra))


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, tiny_gpt2: Path, report: Report) -> Iterator[Stack]:
    server = RedisProcess(tmp_path_factory.mktemp("rel-redis"), config=REPO / "docker" / "redis.conf")
    api = ApiProcess(tmp_path_factory.mktemp("rel-api"), api_env(tiny_gpt2, server.url), keys=KEYS)
    try:  # starts inside the try: one that times out must not leave its process behind
        server.start()
        api.start()
        yield Stack(server, api, report, model=httpx.get(f"{api.url}/readyz", timeout=10).json()["fingerprint"])
    finally:
        api.stop()
        server.stop()


@pytest.fixture(scope="session")
def replica(stack: Stack, tmp_path_factory: pytest.TempPathFactory, tiny_gpt2: Path) -> Iterator[ApiProcess]:
    """A second API process on the stack's Redis with the same settings: replicas behave as one."""
    api = ApiProcess(tmp_path_factory.mktemp("rel-replica"), api_env(tiny_gpt2, stack.redis.url), keys=KEYS)
    try:
        api.start()
        yield api
    finally:
        api.stop()
