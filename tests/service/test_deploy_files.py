"""docker-compose.yml, the Dockerfile, redis.conf, Prometheus and Grafana provisioning are consistent."""

import json
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


def test_compose_file_validates() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed")
    result = subprocess.run(
        [binary, "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr


def test_compose_wires_the_stack() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) >= {"api", "redis", "prometheus", "grafana"}
    api = services["api"]
    assert api["build"]["dockerfile"] == "docker/Dockerfile"
    assert api["environment"]["RECKONING_REDIS_URL"].startswith("redis://redis:")
    assert services["redis"]["command"][1] == "/usr/local/etc/redis/redis.conf"
    assert any(v.startswith("./docker/redis.conf:") for v in services["redis"]["volumes"])
    assert any(v.startswith("./docker/prometheus.yml:") for v in services["prometheus"]["volumes"])
    assert any(v.startswith("./docker/grafana/provisioning:") for v in services["grafana"]["volumes"])


def test_dockerfile_contract() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert lines[0].startswith("ARG BASE_IMAGE=") and lines[1] == "FROM ${BASE_IMAGE}"
    torch_line = next(i for i, line in enumerate(lines) if "torch==${TORCH_VERSION}" in line)
    project_line = next(i for i, line in enumerate(lines) if '".[serve]"' in line)
    assert torch_line < project_line, "CPU torch must be installed before the project"
    assert "ARG TORCH_VERSION=2.13.0" in lines
    users = [line for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("USER root", "USER 0")
    assert any(line.startswith("HEALTHCHECK") for line in lines) and "/healthz" in text
    assert any(line.startswith("CMD") and "serve" in line for line in lines)


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
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr
        merged = yaml.safe_load(result.stdout)["services"]["api"]
        assert merged["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
        assert merged["environment"]["RECKONING_REDIS_URL"]  # the base file's settings survive the override
