"""The deployment files do what they promise: the image holds and runs exactly the server, its health check
probes a live API, compose and Redis' config wire a stack that keeps facts, Prometheus and Grafana see the metrics."""

import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import yaml

from benchmarks.processes import ApiProcess, RedisProcess, free_port
from reckoning_cli.main import build_parser
from service.metrics import CONTRACT_METRICS
from tests.support import unavailable

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
FIRST_PARTY = {"reckoning_cli", "reckoning_core", "service", "training", "benchmarks"}


@dataclass
class Stage:
    """One build stage: its FROM line, and its instructions as (INSTRUCTION, arguments) in order."""

    base: str
    steps: list[tuple[str, str]] = field(default_factory=list)

    def args(self, instruction: str) -> list[str]:
        return [rest for name, rest in self.steps if name == instruction]


def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    """Build args declared before the first FROM (with defaults), and the stages."""
    text = re.sub(r"\\\r?\n", " ", (DOCKER / "Dockerfile").read_text())
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in (ln.strip() for ln in text.splitlines()):
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(" ")
        if name.upper() == "FROM":
            stages.append(Stage(rest.strip()))
        elif stages:
            stages[-1].steps.append((name.upper(), rest.strip()))
        elif name.upper() == "ARG":
            key, _, default = rest.partition("=")
            global_args[key.strip()] = default.strip()
    return global_args, stages


def exec_form(arguments: str) -> list[str]:
    form = json.loads(arguments)
    assert isinstance(form, list) and all(isinstance(a, str) for a in form), arguments
    return form


def test_the_base_image_is_a_build_argument() -> None:
    # No registry is reachable on the build machines: the base must be swappable for a locally made image.
    global_args, stages = dockerfile()
    match = re.fullmatch(r"\$\{?(\w+)\}?(\s+AS\s+\w+)?", stages[-1].base, re.I)
    assert match and global_args.get(match.group(1)), stages[-1].base


def test_the_image_holds_exactly_what_reckoning_serve_imports() -> None:
    _, stages = dockerfile()
    copied = {shlex.split(arg)[-2].strip("./") for arg in stages[-1].args("COPY")}
    code = (
        "import json, sys, reckoning_cli.main, service.cli, service.main; "
        "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    imported = set(json.loads(done.stdout)) & FIRST_PARTY
    assert copied & FIRST_PARTY == imported, (copied, imported)  # all it needs, and neither training nor bench


def test_cpu_torch_goes_in_before_the_project_and_the_final_stage_keeps_no_build_tools() -> None:
    global_args, stages = dockerfile()
    runs = stages[-1].args("RUN")
    torch_at = next(i for i, r in enumerate(runs) if "torch==${TORCH_VERSION}" in r and "${TORCH_INDEX_URL}" in r)
    project_at = next(i for i, r in enumerate(runs) if '".[serve]"' in r)
    assert torch_at < project_at, "pip would resolve torch from PyPI: the multi-GB CUDA build"
    stage_args = dict(a.partition("=")[::2] for a in stages[-1].args("ARG"))
    ci_pin = re.search(r"torch==([\w.]+)", (REPO / ".ci" / "run").read_text())
    assert ci_pin and stage_args.get("TORCH_VERSION", global_args.get("TORCH_VERSION")) == ci_pin.group(1)
    tools = re.compile(r"\b(build-essential|gcc|g\+\+|make|git|cmake)\b")
    assert not [r for r in runs if "install" in r and tools.search(r)]


def test_the_command_serves_on_the_exposed_port() -> None:
    _, stages = dockerfile()
    final = stages[-1]
    [cmd] = final.args("CMD")
    argv = exec_form(cmd)
    assert argv[0] == "reckoning"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "serve" and args.host == "0.0.0.0"
    assert [str(args.port)] == [p.split("/")[0] for p in final.args("EXPOSE")]


def test_the_healthcheck_passes_on_a_live_api_and_fails_on_a_dead_port(embedded_api: ApiProcess) -> None:
    _, stages = dockerfile()
    [check] = stages[-1].args("HEALTHCHECK")
    argv = exec_form(check[check.index("CMD") + 3 :].strip())
    probe = next(a for a in argv if "/healthz" in a)
    url = urlparse(re.search(r"https?://[^'\"]+", probe).group(0))  # type: ignore[union-attr]
    assert url.port == build_parser().parse_args(exec_form(stages[-1].args("CMD")[0])[1:]).port

    def run_check(port: int) -> int:
        command = [sys.executable if a in ("python", "python3") else a.replace(f":{url.port}/", f":{port}/")
                   for a in argv]
        return subprocess.run(command, capture_output=True, timeout=30).returncode

    assert run_check(embedded_api.port) == 0
    assert run_check(free_port()) != 0


def compose() -> dict:  # type: ignore[type-arg]
    binary = shutil.which("docker-compose")
    if binary is None:
        unavailable("docker-compose is not installed")
    done = subprocess.run([binary, "-f", str(REPO / "docker-compose.yml"), "config"], capture_output=True,
                          text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    resolved: dict = yaml.safe_load(done.stdout)  # type: ignore[type-arg]
    return resolved


def mounts(service: dict) -> list[tuple[str, str, bool]]:  # type: ignore[type-arg]
    """(source, target, read-only) of a service's volumes, in either compose syntax."""
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, str):
            source, target, *mode = v.split(":")
            out.append((source, target, mode == ["ro"]))
        else:
            out.append((v.get("source", ""), v["target"], bool(v.get("read_only"))))
    return out


def test_compose_validates_and_wires_the_api_to_redis_and_the_models() -> None:
    services = compose()["services"]
    api = services["api"]
    assert api["build"]["dockerfile"] == "docker/Dockerfile"
    redis_url = urlparse(api["environment"]["RECKONING_REDIS_URL"])
    assert redis_url.hostname in services and api["depends_on"][redis_url.hostname]["condition"] == "service_healthy"
    model_dir = api["environment"]["RECKONING_MODEL_DIR"]
    models = [m for m in mounts(api) if model_dir.startswith(m[1] + "/")]
    assert models and models[0][2], "the model folder must be mounted (read-only) where the api reads it"
    redis = services[redis_url.hostname]
    [conf] = [m for m in mounts(redis) if m[1] == redis["command"][-1]]  # the file redis-server is started with
    assert Path(conf[0]).resolve() == (DOCKER / "redis.conf").resolve()


def test_redis_conf_loads_and_protects_facts(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path, config=DOCKER / "redis.conf")
    server.start()
    try:
        client = server.client()
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "volatile-lru"  # only TTL keys go
        assert client.config_get("appendonly")["appendonly"] == "yes"  # facts survive a restart
        assert int(str(client.config_get("maxmemory")["maxmemory"])) > 0
    finally:
        server.stop()


def test_prometheus_scrapes_the_api_where_compose_serves_it() -> None:
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    host, port = job["static_configs"][0]["targets"][0].split(":")
    services = compose()["services"]
    assert host in services and any(int(p["target"]) == int(port) for p in services[host]["ports"])


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
