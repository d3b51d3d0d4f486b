"""docker-compose.yml, the Dockerfile, redis.conf, Prometheus and Grafana provisioning are consistent."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from benchmarks.processes import RedisProcess
from service.metrics import CONTRACT_METRICS

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"


COMPOSE_SECRETS = {"REDIS_PASSWORD": "0123456789abcdef", "GRAFANA_ADMIN_PASSWORD": "grafana-secret"}


def _compose_config(env: dict[str, str], scratch: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed")
    # An empty env file and a clean environment: no developer .env, no inherited secrets.
    empty_env = scratch / "empty.env"
    empty_env.write_text("")
    clean = {k: v for k, v in os.environ.items() if k not in COMPOSE_SECRETS and not k.startswith("RECKONING_")}
    return subprocess.run(
        [binary, "-f", str(REPO / "docker-compose.yml"), "--env-file", str(empty_env), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**clean, **env},
    )


def test_compose_file_validates(tmp_path: Path) -> None:
    result = _compose_config(COMPOSE_SECRETS, tmp_path)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["services"]["api"]["environment"]["RECKONING_REDIS_URL"] == "redis://:0123456789abcdef@redis:6379/0"


@pytest.mark.parametrize("missing", sorted(COMPOSE_SECRETS))
def test_compose_refuses_to_start_without_secrets(missing: str, tmp_path: Path) -> None:
    result = _compose_config({k: v for k, v in COMPOSE_SECRETS.items() if k != missing}, tmp_path)
    assert result.returncode != 0
    assert missing in result.stderr


def test_compose_wires_the_stack() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) >= {"api", "redis", "prometheus", "grafana"}
    api = services["api"]
    assert api["build"]["dockerfile"] == "docker/Dockerfile"
    assert api["environment"]["RECKONING_REDIS_URL"].startswith("redis://:${REDIS_PASSWORD:?")
    assert api["environment"]["RECKONING_REDIS_URL"].endswith("@redis:6379/0")
    redis_service = services["redis"]
    assert redis_service["command"][1] == "/usr/local/etc/redis/redis.conf"
    assert redis_service["command"][2:4] == ["--requirepass", redis_service["environment"]["REDISCLI_AUTH"]]
    assert redis_service["command"][3].startswith("${REDIS_PASSWORD:?")
    assert "ports" not in redis_service, "Redis must not be published"
    assert any(v.startswith("./docker/redis.conf:") for v in redis_service["volumes"])
    assert any(v.startswith("./docker/prometheus.yml:") for v in services["prometheus"]["volumes"])
    assert any(v.startswith("./docker/grafana/provisioning:") for v in services["grafana"]["volumes"])
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    # Published ports bind loopback unless the operator says otherwise.
    assert api["ports"] == ["${RECKONING_BIND:-127.0.0.1}:${RECKONING_PORT:-8000}:8000"]
    for name in ("prometheus", "grafana"):
        assert all(port.startswith("127.0.0.1:") for port in services[name]["ports"]), name
    example = (REPO / ".env.example").read_text()
    assert "REDIS_PASSWORD=" in example and "GRAFANA_ADMIN_PASSWORD=" in example


def _instructions(path: Path) -> list[str]:
    """Dockerfile instructions, one per entry, continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_dockerfile_contract() -> None:
    lines = _instructions(DOCKER / "Dockerfile")
    assert lines[0].startswith("ARG BASE_IMAGE="), "the base image must be a build argument"
    froms = [line for line in lines if line.startswith("FROM ")]
    assert froms[0] == "FROM scratch AS wheels"
    assert all(f.startswith("FROM ${BASE_IMAGE}") for f in froms[1:]) and len(froms) == 3
    build_at = lines.index(froms[1])
    runtime_at = lines.index(froms[2])
    build, runtime = lines[build_at:runtime_at], lines[runtime_at:]

    # Build stage: CPU torch first, everything through the lock.
    torch_line = next(i for i, line in enumerate(build) if "torch==${TORCH_VERSION}" in line)
    project_line = next(i for i, line in enumerate(build) if '".[serve]"' in line)
    assert torch_line < project_line, "CPU torch must be installed before the project"
    assert "ARG TORCH_VERSION=2.13.0" in build
    assert any(line.startswith("COPY requirements.lock") for line in build[:torch_line])
    for line in (build[torch_line], build[project_line]):
        assert "-c requirements.lock" in line, line

    # Runtime stage: only the virtualenv from the build stage, no installs, non-root, healthcheck.
    assert not any("pip install" in line or "apt-get install" in line for line in runtime)
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    users = [line for line in runtime if line.startswith("USER ")]
    assert users and users[-1] not in ("USER root", "USER 0")
    assert any(line.startswith("HEALTHCHECK") and "/healthz" in line for line in runtime)
    assert any(line.startswith("CMD") and "serve" in line for line in runtime)


def test_redis_dockerfile_takes_the_same_base() -> None:
    lines = _instructions(DOCKER / "Dockerfile.redis")
    assert lines[0].startswith("ARG BASE_IMAGE=") and lines[1] == "FROM ${BASE_IMAGE}"
    assert any(line.startswith("USER ") and line != "USER root" for line in lines)


def test_redis_conf_loads_and_protects_facts(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path, config=DOCKER / "redis.conf")
    server.start()
    try:
        client = server.client()
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "volatile-lru"
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert int(str(client.config_get("maxmemory")["maxmemory"])) > 0
    finally:
        server.stop()
    conf = (DOCKER / "redis.conf").read_text()
    assert re.search(r"^maxmemory \S+", conf, re.M)
    assert re.search(r"^appendonly yes", conf, re.M)


def test_prometheus_scrapes_the_api() -> None:
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert "api:8000" in job["static_configs"][0]["targets"]


def test_grafana_provisioning_covers_every_contract_metric() -> None:
    datasource = yaml.safe_load((DOCKER / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((DOCKER / "grafana/provisioning/dashboards/reckoning.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
    dashboard = json.loads((DOCKER / "grafana/dashboards/reckoning.json").read_text())
    exprs = " ".join(t["expr"] for panel in dashboard["panels"] for t in panel["targets"])
    for name in CONTRACT_METRICS:
        assert name in exprs, name
    uids = {t["datasource"]["uid"] for panel in dashboard["panels"] for t in panel["targets"]}
    assert uids == {datasource["datasources"][0]["uid"]}


def test_gpu_override_reserves_a_gpu_and_builds_cuda_torch() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.gpu.yml").read_text())
    api = compose["services"]["api"]
    [device] = api["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and device["count"] == 1
    assert "cu" in api["build"]["args"]["TORCH_VARIANT"]
    assert "cuda" in api["environment"]["RECKONING_DEVICE"]
    text = (DOCKER / "Dockerfile").read_text()
    assert "ARG TORCH_VARIANT=cpu" in text and "whl/${TORCH_VARIANT}" in text  # CPU unless asked
    binary = shutil.which("docker-compose")
    if binary:
        result = subprocess.run(
            [binary, "-f", str(REPO / "docker-compose.yml"), "-f", str(REPO / "docker-compose.gpu.yml"), "config"],
            capture_output=True, text=True, timeout=60, env={**os.environ, **COMPOSE_SECRETS},
        )
        assert result.returncode == 0, result.stderr
        merged = yaml.safe_load(result.stdout)["services"]["api"]
        assert merged["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
        assert merged["environment"]["RECKONING_REDIS_URL"]  # the base file's settings survive the override
