"""BenchConfig: every knob of one benchmark run, with the --quick and full presets."""

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

DEFAULT_THREADS = 1


def threads_from_env() -> int:
    """RECKONING_BENCH_THREADS, else 1: one thread makes the figures comparable across machines and runs."""
    raw = os.environ.get("RECKONING_BENCH_THREADS", "")
    return int(raw) if raw.strip() else DEFAULT_THREADS


# The in-context baseline the bench compares with: FT-ICR trained on the default model's data.
DEFAULT_ICR_MODEL = Path("models/icr-full")


@dataclass(frozen=True)
class BenchConfig:
    model: Path
    out: Path
    quick: bool = False
    threads: int = DEFAULT_THREADS
    device: str = "auto"  # RECKONING_DEVICE; resolved when the bench loads its models
    icr_model: Path | None = DEFAULT_ICR_MODEL  # the FT-ICR checkpoint; None = `model` itself
    data_path: Path | None = None  # owa_dev_natlang.jsonl; None = RECKONING_DATA_DIR or ../shared/data
    seed: int = 0
    # --- in-process timings (medians after warm-up) ---
    warmup: int = 3
    encode_repeats: int = 15
    ask_repeats: int = 100
    amortization_max_n: int = 64
    amortization_repeats: int = 5
    batched_n: int = 16
    batched_repeats: int = 30
    # --- scaling with knowledge size (training's solver-labelled full-language generator, fixed seed) ---
    scaling_sizes: tuple[int, ...] = (4, 16, 64, 256)
    scaling_sets: int = 4  # knowledge sets per size (accuracy is over all their questions)
    scaling_repeats: int = 5  # encodes timed per size
    scaling_ask_repeats: int = 50
    # --- cheaper encodes: the shipped weights with fewer steps, an adaptive stop, plain facts ---
    encode_option_theories: int = 60
    encode_option_steps: tuple[int, ...] = (2, 3)
    adaptive_thresholds: tuple[float, ...] = (0.8, 0.5, 0.35)
    option_model: Path | None = Path("models/reckoning-full")  # the 4-step model the default was meta-trained from
    # --- batched encodes ---
    encode_batch_sizes: tuple[int, ...] = (1, 4, 16)
    encode_batch_repeats: int = 3
    # --- delta_options: a fixed slice of dev theories (the first n in file order) ---
    option_theories: int = 60
    lora_ranks: tuple[int, ...] = (4, 16)
    svd_ranks: tuple[int, ...] = (8, 16, 32, 64)  # the default delta compressed after the inner loop
    # --- http: real uvicorn + real redis-server on loopback ---
    http: bool = True
    http_concurrency: int = 16
    http_seconds: float = 30.0  # measured time per scenario, split over http_rounds alternating segments
    http_rounds: int = 3
    http_warmup_s: float = 2.0  # discarded at the start of every segment (new connections, first asks)
    http_distinct_ids: int = 1000
    http_encode_budget_s: float = 1800.0  # encoding the distinct sets stops here (~0.4 s a set measured here)
    http_request_cap: int = 200_000  # a hard bound next to the time bound

    @classmethod
    def preset(cls, *, quick: bool, model: str | Path, out: str | Path, threads: int | None = None) -> "BenchConfig":
        full = cls(model=Path(model), out=Path(out), threads=threads or threads_from_env())
        if not quick:
            return full
        return replace(
            full,
            quick=True,
            warmup=2,
            encode_repeats=5,
            ask_repeats=30,
            amortization_repeats=3,
            batched_repeats=10,
            scaling_sets=2,
            scaling_repeats=2,
            scaling_ask_repeats=15,
            encode_option_theories=20,
            encode_batch_repeats=1,
            option_theories=20,
            lora_ranks=(8,),
            svd_ranks=(16, 32),
            http_seconds=10.0,
            http_rounds=2,
            http_warmup_s=1.0,
            http_distinct_ids=100,
            http_encode_budget_s=120.0,
        )

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = str(self.model)
        d["out"] = str(self.out)
        d["icr_model"] = str(self.icr_model) if self.icr_model else None
        d["option_model"] = str(self.option_model) if self.option_model else None
        for key in ("scaling_sizes", "encode_option_steps", "adaptive_thresholds", "encode_batch_sizes"):
            d[key] = list(d[key])
        d["data_path"] = str(self.data_path) if self.data_path else None
        d["lora_ranks"] = list(self.lora_ranks)
        d["svd_ranks"] = list(self.svd_ranks)
        return d
