"""The benchmark suite behind `reckoning bench`: where encode-once beats in-context reasoning, in numbers."""

from typing import Any

__all__ = ["BenchConfig", "bench_cmd", "run_bench", "write_outputs"]


def __getattr__(name: str) -> Any:
    # Lazy, so that rendering the report (service.bench.report) never pays for importing torch.
    if name == "BenchConfig":
        from service.bench.config import BenchConfig

        return BenchConfig
    if name in ("bench_cmd", "run_bench", "write_outputs"):
        from service.bench import run

        return getattr(run, name)
    raise AttributeError(f"module 'service.bench' has no attribute {name!r}")
