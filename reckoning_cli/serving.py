"""`reckoning serve | encode | ask`: the HTTP API and its command-line client (package `service`)."""

from __future__ import annotations

import argparse


def _serve(args: argparse.Namespace) -> None:
    from service.cli import serve

    serve(host=args.host, port=args.port, model=args.model)


def _encode(args: argparse.Namespace) -> int:
    from service.cli import encode_cmd

    return encode_cmd(args.file, url=args.url, api_key=args.api_key, ttl_s=args.ttl_s)


def _ask(args: argparse.Namespace) -> int:
    from service.cli import ask_cmd

    return ask_cmd(args.knowledge_id, args.question, url=args.url, api_key=args.api_key, choices=args.choices)


def _server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=None, help="default: $RECKONING_URL or http://127.0.0.1:8000")
    p.add_argument("--api-key", default=None, help="default: $RECKONING_API_KEY")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("serve", help="run the HTTP API (settings from RECKONING_* variables)")
    s.add_argument("--host", default=None)
    s.add_argument("--port", type=int, default=None)
    s.add_argument("--model", default=None,
                   help="checkpoint folder (default: $RECKONING_MODEL_DIR, else models/reckoning-full-k2)")
    s.set_defaults(handler=_serve, extra="serve")

    e = sub.add_parser("encode", help="encode a file of facts (one per line) on a running server; prints JSON")
    e.add_argument("file", help="one fact per line, a JSON list, or - for stdin")
    _server_options(e)
    e.add_argument("--ttl-s", type=int, default=None)
    e.set_defaults(handler=_encode, extra="serve")

    a = sub.add_parser("ask", help="ask a question about an encoded knowledge id on a running server; prints JSON")
    a.add_argument("knowledge_id")
    a.add_argument("question")
    _server_options(a)
    a.add_argument("--choices", nargs="+", default=None)
    a.set_defaults(handler=_ask, extra="serve")
