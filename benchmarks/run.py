"""run_bench: every section in order, one JSON object out, then the plot and the markdown table."""

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import torch

from benchmarks.config import BenchConfig
from benchmarks.data import load_dev_theories, typical_theory
from benchmarks.http import http_figures
from benchmarks.latency import amortization, batched_ask, core_figures
from benchmarks.plot import plot_amortization
from benchmarks.report import check_targets, render_markdown
from benchmarks.timing import git_info, machine_info
from reckoning_core.reckoner import Reckoner
from service.settings import Settings
from training.delta_options import delta_options, spec_json

SCHEMA = "reckoning-bench/1"


def run_bench(cfg: BenchConfig, log: TextIO = sys.stderr) -> dict[str, Any]:
    started = time.perf_counter()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    torch.set_num_threads(cfg.threads)
    machine = machine_info(cfg.threads)
    seconds: dict[str, float] = {}

    def section(name: str) -> None:
        seconds[name] = round(time.perf_counter() - started, 1)
        print(f"bench: {name} (t={seconds[name]:.0f}s)", file=log, flush=True)

    section("load model")
    reckoner = Reckoner.from_pretrained(cfg.model, device="cpu", torch_threads=cfg.threads)
    theories = load_dev_theories(cfg.data_path)
    hot = typical_theory(theories)
    # the service's default: the stored delta's dtype is what an HTTP ask loads
    delta_dtype = str(Settings.model_fields["delta_dtype"].default)
    delta_rank = int(Settings.model_fields["delta_rank"].default)

    section("encode / ask / plain / in-context")
    core = core_figures(reckoner, hot, cfg, delta_dtype, delta_rank)
    section("amortization")
    amort = amortization(reckoner, hot, cfg)
    section("batched ask")
    batched = batched_ask(reckoner, hot, cfg)
    section("delta options")
    options = delta_options(reckoner, theories, n_theories=cfg.option_theories, lora_ranks=cfg.lora_ranks,
                            svd_ranks=cfg.svd_ranks, default_dtype=delta_dtype, default_rank=delta_rank)
    http: dict[str, Any] | None = None
    if cfg.http:
        section("http")
        http = http_figures(cfg, hot, theories, core["delta_bytes"], log)
    section("done")

    details = core.pop("details")
    rss = (http or {}).get("server_rss", {}).get("after_encoding", {}).get("rss_mb")
    data: dict[str, Any] = {
        "schema": SCHEMA,
        "quick": cfg.quick,
        **core,
        "amortization": amort,
        "batched_ask_speedup": batched["speedup"],
        "batched_ask": batched,
        "http": http,
        "delta_options": options,
        "server_rss_mb_1000_sets": rss,
        "server_rss_sets": (http or {}).get("encode_over_http", {}).get("n_sets"),
        "details": details,
        "model": {
            "path": str(cfg.model),
            "name": reckoner.model_name,
            "fingerprint": reckoner.fingerprint,
            "fast_weights": spec_json(reckoner.config.encode.fast_weights),
            "inner_steps": reckoner.config.encode.inner_steps,
            "parameters": sum(p.numel() for p in reckoner.model.parameters()),
        },
        "machine": {**machine, "loadavg_1m_at_end": round(os.getloadavg()[0], 2)},
        "git": git_info(),
        "config": cfg.to_json(),
        "started_at": started_at,
        "seconds": round(time.perf_counter() - started, 1),
        "section_started_s": seconds,
    }
    data["targets"] = check_targets(data)
    return data


def write_outputs(data: dict[str, Any], out: Path) -> dict[str, Path]:
    """bench.json at `out`; amortization.png and bench.md beside it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_name("amortization.png")
    data["amortization"]["plot"] = png.name
    out.write_text(json.dumps(data, indent=2) + "\n")
    plot_amortization(data, png)
    md = out.with_name("bench.md")
    md.write_text(render_markdown(data, str(out)))
    return {"json": out, "png": png, "md": md}


def bench_cmd(quick: bool = False, out: str = "results/bench.json", model: str = "models/reckoning-proofwriter",
              threads: int | None = None) -> None:
    """`reckoning bench run [--quick] [--out FILE] [--model DIR]`; torch threads from RECKONING_BENCH_THREADS (1)."""
    if not Path(model).is_dir():
        sys.exit(f"reckoning bench run: model folder {model!r} does not exist (pass --model DIR)")
    cfg = BenchConfig.preset(quick=quick, model=model, out=out, threads=threads)
    data = run_bench(cfg)
    paths = write_outputs(data, cfg.out)
    for check in data["targets"]:
        print(f"{check['status']:>4}  {check['figure']}: {check['value']} (target {check['target']})")
    print(f"wrote {', '.join(str(p) for p in paths.values())} in {data['seconds']:.0f} s")
