"""Process memory and encode time across many fact sets of varied size, float32 against bf16 inner loops.

    python -m benchmarks.autocast_memory --out results/autocast-memory.json

Each variant runs in its own process (oneDNN's kernel caches are per process): the model encodes N fact sets
drawn from owa_dev theories with 1 to all of a theory's sentences, as the service sees them, and the RSS is
read every `--every` encodes. Variants: float32; bf16 with fact rows at their own width; bf16 with rows padded
to a multiple of AUTOCAST_WIDTH_MULTIPLE tokens (what a Reckoner does under autocast).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from reckoning_core.config import DEFAULT_MODEL_DIR

VARIANTS: dict[str, dict[str, Any]] = {
    "float32": {"inner_autocast": "off", "fact_width_multiple": None},
    "bf16, rows at their own width": {"inner_autocast": "bf16", "fact_width_multiple": 1},
    "bf16, rows padded to a multiple of 64": {"inner_autocast": "bf16", "fact_width_multiple": None},
}


def _child(name: str, model: str, n: int, every: int, seed: int) -> dict[str, Any]:
    import torch

    from benchmarks.data import load_dev_theories
    from benchmarks.processes import rss_mib
    from reckoning_core.reckoner import Reckoner

    torch.set_num_threads(1)
    spec = VARIANTS[name]
    reckoner = Reckoner.from_pretrained(model, inner_autocast=spec["inner_autocast"],
                                        fact_width_multiple=spec["fact_width_multiple"])
    theories = load_dev_theories()
    rng = random.Random(seed)
    sets = []
    for _ in range(n):
        facts = list(rng.choice(theories).facts)
        sets.append(rng.sample(facts, rng.randint(1, len(facts))))
    rss = [{"encodes": 0, "rss_mib": round(rss_mib(os.getpid()), 1)}]
    times: list[float] = []
    started = time.perf_counter()
    for i, facts in enumerate(sets, 1):
        t = time.perf_counter()
        reckoner.encode(facts)
        times.append((time.perf_counter() - t) * 1000)
        if i % every == 0 or i == n:
            rss.append({"encodes": i, "rss_mib": round(rss_mib(os.getpid()), 1)})
    return {
        "variant": name,
        "inner_autocast": reckoner.inner_autocast,
        "fact_width_multiple": reckoner.fact_width_multiple,
        "encodes": n,
        "distinct_fact_tokens": len({sum(len(f) for f in s) for s in sets}),
        "seconds": round(time.perf_counter() - started, 1),
        "encode_ms_median": round(statistics.median(times), 1),
        "encode_ms_median_last_half": round(statistics.median(times[n // 2:]), 1),
        "rss_mib": rss,
        "rss_growth_mib": round(rss[-1]["rss_mib"] - rss[0]["rss_mib"], 1),
        "rss_growth_second_half_mib": round(rss[-1]["rss_mib"] - min(rss, key=lambda r: abs(r["encodes"] - n // 2))
                                            ["rss_mib"], 1),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    ap.add_argument("--encodes", type=int, default=200)
    ap.add_argument("--every", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--child", choices=list(VARIANTS), default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.model, args.encodes, args.every, args.seed)))
        return
    from benchmarks.timing import git_info, machine_info

    rows = []
    load_start = os.getloadavg()
    for name in VARIANTS:
        cmd = [sys.executable, "-m", "benchmarks.autocast_memory", "--child", name, "--model", args.model,
               "--encodes", str(args.encodes), "--every", str(args.every), "--seed", str(args.seed)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"variant {name!r} failed:\n{done.stderr[-3000:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{name:>40}: RSS +{row['rss_growth_mib']} MiB over {row['encodes']} encodes "
              f"(+{row['rss_growth_second_half_mib']} in the second half), encode median {row['encode_ms_median']} ms")
        rows.append(row)
    data = {"schema": "reckoning-autocast-memory/1", "model": args.model, "variants": rows,
            "load_average": {"start": list(load_start), "end": list(os.getloadavg())},
            "machine": machine_info(1), "git": git_info(),
            "command": "python -m benchmarks.autocast_memory " + " ".join(argv if argv is not None else sys.argv[1:])}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(data, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
