"""run_bench: every section in order, one JSON object out, then the plot and the markdown table."""

import json
import os
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import torch

from benchmarks.config import DEFAULT_ICR_MODEL, BenchConfig
from benchmarks.data import load_dev_theories, typical_theory
from benchmarks.encode_cost import cheaper_encodes, encode_batching
from benchmarks.http import http_figures
from benchmarks.latency import amortization, batched_ask, core_figures
from benchmarks.plot import plot_amortization, plot_scaling
from benchmarks.prefix import prefix_figures
from benchmarks.report import check_targets, render_markdown
from benchmarks.scaling import scaling
from benchmarks.timing import git_info, machine_info
from reckoning_core.config import DEFAULT_MODEL_DIR
from reckoning_core.device import DEFAULT_INNER_AUTOCAST, device_setting
from reckoning_core.reckoner import Reckoner
from service.engine import stored_form
from service.settings import Settings
from training.delta_options import delta_options, spec_json

SCHEMA = "reckoning-bench/1"


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: how much else shared the cores (a training run, other engineers)."""
    return [round(x, 2) for x in os.getloadavg()]


def run_bench(cfg: BenchConfig, log: TextIO = sys.stderr) -> dict[str, Any]:
    started = time.perf_counter()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    torch.set_num_threads(cfg.threads)
    machine = machine_info(cfg.threads)
    load_at_start = load_average()
    seconds: dict[str, float] = {}

    def section(name: str) -> None:
        seconds[name] = round(time.perf_counter() - started, 1)
        print(f"bench: {name} (t={seconds[name]:.0f}s)", file=log, flush=True)

    section("load model")
    # the service's default inner-loop precision (RECKONING_INNER_AUTOCAST's default): resolved for this
    # machine, and recorded under model
    reckoner = Reckoner.from_pretrained(cfg.model, device=cfg.device, torch_threads=cfg.threads,
                                        inner_autocast=DEFAULT_INNER_AUTOCAST)
    # the in-context baselines run on the FT-ICR checkpoint (same architecture); its accuracy is its own
    icr = (Reckoner.from_pretrained(cfg.icr_model, device=cfg.device, torch_threads=cfg.threads)
           if cfg.icr_model else reckoner)
    theories = load_dev_theories(cfg.data_path)
    hot = typical_theory(theories)
    # the service's default: the stored delta's dtype is what an HTTP ask loads
    delta_dtype = str(Settings.model_fields["delta_dtype"].default)
    delta_rank = int(Settings.model_fields["delta_rank"].default)

    section("encode / ask / plain / in-context")
    core = core_figures(reckoner, hot, cfg, delta_dtype, delta_rank)
    section("prefix-cached in-context")
    delta = reckoner.encode(list(hot.facts), with_recall=False).delta
    hot_weights = reckoner.merged(stored_form(reckoner, delta, delta_dtype, delta_rank)[1])
    prefix = prefix_figures(reckoner, icr, hot, hot_weights, cfg)
    section("scaling")
    rows = scaling(reckoner, icr, cfg, delta_dtype, delta_rank, log)
    section("cheaper encodes")
    cheaper = cheaper_encodes(reckoner, icr, theories, hot, hot_weights, cfg)
    # against the prefix cache, the shipped encode and the asks timed in one window (cheaper encodes)
    prefix["break_even_questions_prefix"] = cheaper["variants"][0]["break_even_questions_prefix"]
    section("batched encodes")
    batching = encode_batching(reckoner, theories, cfg)
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
        **{k: v for k, v in prefix.items() if k != "icr_prefix"},
        "encode_sets_per_s": batching["encode_sets_per_s"],
        "scaling": rows,
        "icr_prefix": prefix["icr_prefix"],
        "cheaper_encodes": cheaper,
        "encode_batching": batching,
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
            "lr_size_ref": reckoner.config.encode.lr_size_ref,  # size scaling of the inner LRs (0: off)
            "inner_autocast": reckoner.inner_autocast,  # what the setting resolved to on this machine
            "inner_autocast_setting": DEFAULT_INNER_AUTOCAST,
            "parameters": sum(p.numel() for p in reckoner.model.parameters()),
        },
        "machine": {**machine, "loadavg_1m_at_end": round(os.getloadavg()[0], 2), "device": reckoner.device},
        # measured under load when these exceed the cores: the report then says the timings are not final
        "load_average": {"start": load_at_start, "end": load_average(), "cpu_count": os.cpu_count()},
        "git": git_info(),
        "config": cfg.to_json(),
        "started_at": started_at,
        "seconds": round(time.perf_counter() - started, 1),
        "section_started_s": seconds,
    }
    data["targets"] = check_targets(data)
    return data


def write_outputs(data: dict[str, Any], out: Path) -> dict[str, Path]:
    """bench.json at `out`; amortization.png, scaling.png and bench.md beside it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_name("amortization.png")
    scaling_png = out.with_name("scaling.png")
    data["amortization"]["plot"] = png.name
    out.write_text(json.dumps(data, indent=2) + "\n")
    plot_amortization(data, png)
    plot_scaling(data, scaling_png)
    md = out.with_name("bench.md")
    md.write_text(render_markdown(data, str(out)))
    return {"json": out, "png": png, "scaling_png": scaling_png, "md": md}


def bench_cmd(quick: bool = False, out: str = "results/bench.json", model: str = str(DEFAULT_MODEL_DIR),
              threads: int | None = None, icr_model: str | None = None, device: str | None = None,
              http: bool = True) -> None:
    """`reckoning bench run [--quick] [--out FILE] [--model DIR] [--icr-model DIR] [--device D]`; torch threads
    from RECKONING_BENCH_THREADS (1), the device from --device, else RECKONING_DEVICE, else auto."""
    icr_model = icr_model or str(DEFAULT_ICR_MODEL)
    for flag, folder in (("--model", model), ("--icr-model", icr_model)):
        if not Path(folder).is_dir():
            sys.exit(f"reckoning bench run: model folder {folder!r} does not exist (pass {flag} DIR)")
    cfg = replace(BenchConfig.preset(quick=quick, model=model, out=out, threads=threads),
                  icr_model=Path(icr_model), device=device_setting(device), http=http)
    data = run_bench(cfg)
    paths = write_outputs(data, cfg.out)
    for check in data["targets"]:
        print(f"{check['status']:>4}  {check['figure']}: {check['value']} (target {check['target']})")
    print(f"wrote {', '.join(str(p) for p in paths.values())} in {data['seconds']:.0f} s")
