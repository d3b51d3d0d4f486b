"""`reckoning bench run | ab | report`: the benchmark suite, A/B of service settings, the report (`benchmarks`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from reckoning_core.config import DEFAULT_MODEL_DIR


def _run(args: argparse.Namespace) -> None:
    from benchmarks.run import bench_cmd

    bench_cmd(quick=args.quick, out=args.out, model=args.model, threads=args.threads, icr_model=args.icr_model,
              device=args.device, http=args.http)


def _ab(args: argparse.Namespace) -> None:
    from benchmarks.ab import ab_cmd

    ab_cmd(args.variant, model=args.model, ids=args.ids, seconds=args.seconds, repeats=args.repeats, out=args.out)


def _report(args: argparse.Namespace) -> None:
    from benchmarks.report import report_cmd

    report_cmd(args.json, md=args.md)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser("bench", help="benchmarks: `bench run` (the suite), `bench ab` (service settings "
                                         "against each other over HTTP), `bench report` (bench.md from bench.json)")
    what = bench.add_subparsers(dest="bench_command", required=True, metavar="run|ab|report")

    r = what.add_parser("run", help="latency, throughput and delta options; writes bench.json, bench.md, a plot")
    r.add_argument("--quick", action="store_true")
    r.add_argument("--out", default="results/bench.json")
    r.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    r.add_argument("--threads", type=int, default=None, help="torch threads (default: $RECKONING_BENCH_THREADS or 1)")
    r.add_argument("--icr-model", default=None,
                   help="the FT-ICR checkpoint the in-context baselines run on (default: models/icr-full, trained "
                        "on the default model's data)")
    r.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N (default: $RECKONING_DEVICE or auto)")
    r.add_argument("--no-http", dest="http", action="store_false", help="skip the HTTP section")
    r.set_defaults(handler=_run, extra="bench")

    a = what.add_parser("ab", help="the HTTP hot-vs-distinct load once per variant of RECKONING_* settings, alternated")
    a.add_argument("--variant", action="append", required=True, metavar="NAME:RECKONING_KEY=VALUE[,...]",
                   help="repeat; at least two")
    a.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    a.add_argument("--ids", type=int, default=150, help="distinct knowledge ids in the distinct scenario")
    a.add_argument("--seconds", type=float, default=20.0, help="measured seconds per scenario and run")
    a.add_argument("--repeats", type=int, default=2)
    a.add_argument("--out", type=Path, required=True)
    a.set_defaults(handler=_ab, extra="bench")

    p = what.add_parser("report", help="render bench.md from a bench.json")
    p.add_argument("json", nargs="?", default="results/bench.json")
    p.add_argument("--md", default=None, help="default: bench.md beside the JSON")
    p.set_defaults(handler=_report, extra="bench")
