"""Median-after-warm-up timers and the machine/model/git facts every result is recorded with."""

import gc
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers

_REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p10_ms: float
    p90_ms: float
    n: int

    def to_json(self) -> dict[str, float | int]:
        return {"median_ms": round(self.median_ms, 3), "p10_ms": round(self.p10_ms, 3),
                "p90_ms": round(self.p90_ms, 3), "n": self.n}


def summarize(samples_ms: list[float]) -> Timing:
    if not samples_ms:
        raise ValueError("no samples")
    ordered = sorted(samples_ms)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return Timing(statistics.median(ordered), pick(0.1), pick(0.9), len(ordered))


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): no interpolation between two real observations."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(1, int(-(-q * len(ordered) // 100)))  # ceil(q/100 * n)
    return ordered[min(rank, len(ordered)) - 1]


def measure_interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int) -> dict[str, Timing]:
    """Run each function once per round, round after round, so that drift in background load
    (a training run sharing the cores) hits every variant alike; medians per function."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()  # a collection landing inside one sample is noise, not the code under test
    try:
        for _ in range(repeats):
            for name, fn in fns.items():
                started = time.perf_counter_ns()
                fn()
                samples[name].append((time.perf_counter_ns() - started) / 1e6)
    finally:
        if was_enabled:
            gc.enable()
    return {name: summarize(s) for name, s in samples.items()}


def measure(fn: Callable[[], object], repeats: int, warmup: int) -> Timing:
    return measure_interleaved({"fn": fn}, repeats, warmup)["fn"]


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info(threads: int) -> dict[str, Any]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": threads,
        "torch_threads_effective": torch.get_num_threads(),
        "niceness": os.nice(0),
        # the load average says whether something else shared the cores while this ran
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
    }


def git_info() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=_REPO, capture_output=True, text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}
