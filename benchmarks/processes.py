"""Real processes on free ports: redis-server and the API under uvicorn, for the bench and process-level tests."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

import httpx
import psutil
import redis
from prometheus_client.parser import text_string_to_metric_families

from service.settings import Settings

# The directory holding the `service` package, so a child process imports this very source tree.
_SOURCE_ROOT = Path(__file__).resolve().parents[1]
# The MAC secret of harness processes unless a test sets its own (RECKONING_SECRET_KEY is required with Redis;
# processes on one Redis must share it, as replicas do).
HARNESS_SECRET_KEY = "reckoning-harness-secret-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


class _ChildProcess:
    """A server in a child process: start() waits until it serves, stop() ends it (SIGTERM, then SIGKILL after
    `stop_wait_s`); as a context manager it is started on entry and stopped on exit (a failed start too)."""

    proc: subprocess.Popen[bytes] | None
    stop_wait_s: float

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(self.stop_wait_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisProcess(_ChildProcess):
    """A real redis-server on a free port in its own directory (optionally from a config file)."""

    stop_wait_s = 10.0

    def __init__(
        self, workdir: Path, *, config: Path | None = None, port: int | None = None, args: list[str] | None = None
    ) -> None:
        self.workdir = workdir
        self.config = config
        self.args = args or []  # last on the command line: they override the defaults below
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        args = [binary, *([str(self.config)] if self.config else []), "--port", str(self.port)]
        args += ["--bind", "127.0.0.1", "--dir", str(self.workdir), "--appendonly", "yes"]
        args += ["--maxmemory-policy", "volatile-lru", "--save", ""]
        # fsync every write so a SIGKILL loses nothing: the kill test must be deterministic.
        args += ["--appendfsync", "always", "--maxmemory", "256mb", "--daemonize", "no", *self.args]
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - owned by the child process
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.workdir / 'redis.log').read_text()[-2000:]}")
            try:
                return bool(self.client().ping())
            except redis.exceptions.RedisError:
                return False

        _wait(up, 15, "redis-server")

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


class ApiProcess(_ChildProcess):
    """The app served by a real uvicorn in a child process, configured only through RECKONING_* env."""

    stop_wait_s = 20.0  # SIGTERM is graceful: the lifespan drains encodes and closes the store

    def __init__(self, workdir: Path, env: dict[str, str], keys: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.keys = keys or {}  # tenant -> API key, for tests that need more clients
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.env = env
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "api.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def client(self, api_key: str | None = None, *, tenant: str | None = None, timeout: float = 30.0) -> httpx.Client:
        key = self.keys[tenant] if tenant is not None else api_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECKONING_")}
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(filter(None, [str(_SOURCE_ROOT), os.environ.get("PYTHONPATH")])),
                "OMP_NUM_THREADS": "1",
                "RECKONING_TORCH_THREADS": "1",
                "TOKENIZERS_PARALLELISM": "false",
                "RECKONING_SECRET_KEY": HARNESS_SECRET_KEY,
                **self.env,
            }
        )
        cmd = [sys.executable, "-m", "uvicorn", "--factory", "service.main:create_app"]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        # as `reckoning serve` does: uvicorn's own 5 s keep-alive equals httpx's idle expiry, and a client could
        # send on a pooled connection at the instant the server closes it (a ReadError under load)
        cmd += ["--timeout-keep-alive", str(Settings.model_fields["keep_alive_s"].default)]
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        # cwd is a scratch dir so a developer's .env cannot leak into the tests.
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT)

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"API exited during startup:\n{self.log_tail()}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        _wait(up, 90, "the API to start", interval=0.1)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


def redis_api_env(model_dir: Path, redis_url: str, keys: dict[str, str], **settings: str) -> dict[str, str]:
    """The env of an ApiProcess serving `model_dir` on the Redis at `redis_url` to the tenants of `keys`
    (tenant -> API key), with more RECKONING_* `settings`."""
    return {
        "RECKONING_MODEL_DIR": str(model_dir),
        "RECKONING_REDIS_URL": redis_url,
        "RECKONING_API_KEYS": json.dumps({key: tenant for tenant, key in keys.items()}),
        **settings,
    }


def rss_mib(pid: int) -> float:
    """Resident memory of a process in MiB."""
    return float(psutil.Process(pid).memory_info().rss) / (1024 * 1024)


def metric(client: httpx.Client, name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels` (0 when absent)."""
    return metric_value(client.get("/metrics").text, name, **labels)


def metric_value(text: str, name: str, **labels: str) -> float:
    """metric() on an exposition text already fetched."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total
