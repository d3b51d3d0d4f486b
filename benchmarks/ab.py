"""`reckoning bench ab`: the bench's hot-vs-distinct HTTP load, once per variant of service settings, alternated.

    reckoning bench ab --variant before:RECKONING_LOAD_WORKERS=0 \\
        --variant after:RECKONING_LOAD_WORKERS=1 --out results/ab-load-workers.json

Every variant gets its own redis-server and API process with the bench's defaults plus its RECKONING_*
settings; the variants run in turn `--repeats` times (A B A B ...), so a change in background load hits
each alike. Same JSON per run as results/bench.json's `http` section, plus the asks/s medians per variant.
"""

import json
import statistics
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from benchmarks.config import BenchConfig, threads_from_env
from benchmarks.data import load_dev_theories, typical_theory
from benchmarks.http import http_figures
from benchmarks.timing import git_info, machine_info
from reckoning_core.device import device_setting
from reckoning_core.reckoner import Reckoner
from service.engine import stored_form
from service.settings import Settings


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """'name:KEY=VALUE,KEY=VALUE' -> (name, env); KEY must be a RECKONING_* setting."""
    name, _, assignments = text.partition(":")
    if not name:
        raise ValueError(f"variant {text!r}: expected NAME:KEY=VALUE[,KEY=VALUE]")
    env: dict[str, str] = {}
    for item in filter(None, assignments.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("RECKONING_"):
            raise ValueError(f"variant {text!r}: {item!r} is not RECKONING_NAME=VALUE")
        env[key] = value
    return name, env


def _blob_bytes(reckoner: Reckoner, facts: list[str], env: dict[str, str]) -> int:
    """Bytes of one stored delta under the variant's dtype/rank (sizes Redis for the distinct ids)."""
    defaults = Settings.model_fields
    dtype = env.get("RECKONING_DELTA_DTYPE", str(defaults["delta_dtype"].default))
    rank = int(env.get("RECKONING_DELTA_RANK", defaults["delta_rank"].default))
    blob, _ = stored_form(reckoner, reckoner.encode(facts, with_recall=False).delta, dtype, rank)
    return len(blob)


def run_ab(cfg: BenchConfig, variants: list[tuple[str, dict[str, str]]], repeats: int) -> dict[str, Any]:
    torch.set_num_threads(cfg.threads)
    reckoner = Reckoner.from_pretrained(cfg.model, device=device_setting(), torch_threads=cfg.threads)
    theories = load_dev_theories(cfg.data_path)
    hot = typical_theory(theories)
    sizes = {name: _blob_bytes(reckoner, list(hot.facts), env) for name, env in variants}
    del reckoner
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants}
    for r in range(repeats):
        for name, env in variants:
            print(f"ab: repeat {r + 1}/{repeats}, variant {name} {env}", file=sys.stderr, flush=True)
            runs[name].append(http_figures(cfg, hot, theories, sizes[name], api_env=env))

    def median(name: str, scenario: str, key: str) -> float:
        return round(statistics.median(run[scenario][key] for run in runs[name]), 3)

    summary = {
        name: {
            "env": env,
            "delta_blob_bytes": sizes[name],
            "hot_asks_per_s": median(name, "hot", "asks_per_s"),
            "distinct_asks_per_s": median(name, "distinct", "asks_per_s"),
            "distinct_p50_ms": median(name, "distinct", "p50_ms"),
            "distinct_p99_ms": median(name, "distinct", "p99_ms"),
            "many_over_one": round(statistics.median(run["many_over_one"] for run in runs[name]), 4),
        }
        for name, env in variants
    }
    return {
        "schema": "reckoning-bench-ab/1",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "repeats": repeats,
        "summary": summary,
        "runs": runs,
        "config": cfg.to_json(),
        "machine": machine_info(cfg.threads),
        "git": git_info(),
    }


def ab_cmd(variants: list[str], *, model: str, ids: int, seconds: float, repeats: int, out: Path) -> None:
    """Run the A/B (each variant 'NAME:RECKONING_KEY=VALUE[,...]'), write its JSON and print the medians."""
    try:
        parsed = [parse_variant(v) for v in variants]
    except ValueError as exc:
        sys.exit(f"reckoning bench ab: {exc}")
    if len(parsed) < 2:
        sys.exit("reckoning bench ab: give at least two --variant")
    if not Path(model).is_dir():
        sys.exit(f"reckoning bench ab: model folder {model!r} does not exist")
    base = BenchConfig.preset(quick=True, model=model, out=out, threads=threads_from_env())
    cfg = replace(base, http_distinct_ids=ids, http_seconds=seconds, http_encode_budget_s=600.0)
    data = run_ab(cfg, parsed, repeats)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
    for name, row in data["summary"].items():
        print(f"{name:>12}: hot {row['hot_asks_per_s']:.1f}/s, distinct {row['distinct_asks_per_s']:.1f}/s, "
              f"many_over_one {row['many_over_one']:.3f}, distinct p99 {row['distinct_p99_ms']:.0f} ms")
    print(f"wrote {out}")
