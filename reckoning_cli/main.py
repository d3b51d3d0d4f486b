"""Builds the `reckoning` parser from each package's commands and runs the chosen one."""

from __future__ import annotations

import argparse
import sys

from reckoning_cli import bench, serving, training_cmds

EPILOG = """\
serving:    serve, encode, ask          (extra: serve)
training:   train, eval, export, configure, grow, report (extra: train)
benchmarks: bench run, bench ab, bench report (extra: bench)
`reckoning COMMAND --help` describes one command."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reckoning",
        description="Encode knowledge into fast weights and ask about it; train, evaluate and benchmark the models.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for package in (serving, training_cmds, bench):
        package.register(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = args.handler(args)
    except ModuleNotFoundError as exc:
        # A command imports its package only when it runs: a missing one is an install that lacks the extra.
        hint = f"pip install -e '.[{args.extra}]'"
        sys.exit(f"reckoning {args.command}: cannot import {exc.name}; install the {args.extra} extra: {hint}")
    sys.exit(code or 0)
