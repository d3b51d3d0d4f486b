"""The benchmark suite behind `reckoning bench`: where encode-once beats in-context reasoning, in numbers."""

from service.bench.config import BenchConfig
from service.bench.run import bench_cmd, run_bench, write_outputs

__all__ = ["BenchConfig", "bench_cmd", "run_bench", "write_outputs"]
