"""The `reckoning` console script: parses arguments and hands each subcommand to the package that owns it.

Subcommand modules are looked up by name at call time, so this library module depends on
neither `service` nor `training` (and never on fastapi or redis) when imported.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import Any


def _call(module: str, func: str, **kwargs: Any) -> Any:
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        if isinstance(e, ModuleNotFoundError) and e.name == module:
            sys.exit(f"reckoning: this subcommand is not available yet ({module} does not exist)")
        extra = "serve" if module.startswith("service") else "train"
        sys.exit(f"reckoning: {module} is not importable ({e}); install the extra: pip install -e '.[{extra}]'")
    fn: Callable[..., Any] | None = getattr(mod, func, None)
    if fn is None:
        sys.exit(f"reckoning: this subcommand is not available yet ({module}.{func} does not exist)")
    return fn(**kwargs)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reckoning", description="Encode knowledge into fast weights and ask about it.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the HTTP API")
    s.add_argument("--host", default=None)
    s.add_argument("--port", type=int, default=None)
    s.add_argument("--model", default=None, help="checkpoint folder (default: settings / models/reckoning-proofwriter)")

    e = sub.add_parser("encode", help="encode a file of facts (one per line) on a running server")
    e.add_argument("file", help="one fact per line, a JSON list, or - for stdin")
    e.add_argument("--url", default=None, help="default: $RECKONING_URL or http://127.0.0.1:8000")
    e.add_argument("--api-key", default=None, help="default: $RECKONING_API_KEY")
    e.add_argument("--ttl-s", type=int, default=None)

    a = sub.add_parser("ask", help="ask a question about an encoded knowledge id on a running server")
    a.add_argument("knowledge_id")
    a.add_argument("question")
    a.add_argument("--url", default=None, help="default: $RECKONING_URL or http://127.0.0.1:8000")
    a.add_argument("--api-key", default=None, help="default: $RECKONING_API_KEY")
    a.add_argument("--choices", nargs="+", default=None)

    t = sub.add_parser("train", help="meta-train (RECKONING) or fine-tune the in-context baseline")
    t.add_argument("--config", required=True, help="training/configs/NAME.yaml")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    v = sub.add_parser("eval", help="accuracy on a ProofWriter file (either shared format)")
    v.add_argument("--model", default="models/reckoning-proofwriter")
    v.add_argument("--data", default=None, help="default: $RECKONING_DATA_DIR/proofwriter/owa_dev_natlang.jsonl")
    v.add_argument("--setting", choices=["full-theory", "proof-only"], default="full-theory")
    v.add_argument("--method", choices=["reckoning", "icr", "no-knowledge"], default="reckoning")
    v.add_argument("--out", default=None)
    v.add_argument("--limit", type=int, default=None, help="first N theories only")
    v.add_argument("--threads", type=int, default=None)
    v.add_argument("--no-recall", dest="recall", action="store_false")

    b = sub.add_parser("bench", help="latency/throughput benchmark suite")
    b.add_argument("--quick", action="store_true")
    b.add_argument("--out", default="results/bench.json")
    b.add_argument("--model", default="models/reckoning-proofwriter")
    b.add_argument("--threads", type=int, default=None, help="torch threads (default: $RECKONING_BENCH_THREADS or 1)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = vars(build_parser().parse_args(argv))
    cmd = args.pop("command")
    if cmd == "serve":
        _call("service.cli", "serve", **args)
    elif cmd == "encode":
        sys.exit(_call("service.cli", "encode_cmd", **args))
    elif cmd == "ask":
        sys.exit(_call("service.cli", "ask_cmd", **args))
    elif cmd == "train":
        _call("training.cli", "train_cmd", config=args["config"], overrides=args["overrides"])
    elif cmd == "eval":
        _call("training.cli", "eval_cmd", **args)
    elif cmd == "bench":
        _call("benchmarks.run", "bench_cmd", **args)


if __name__ == "__main__":
    main()
