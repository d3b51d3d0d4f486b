"""Functions behind `reckoning serve`, `reckoning encode FILE` and `reckoning ask ID QUESTION`."""

import json
import sys
from pathlib import Path
from typing import Any, TextIO

import httpx

from service.client import ReckoningAPIError, ReckoningClient


def serve(host: str | None = None, port: int | None = None, model: str | Path | None = None) -> None:
    """Run the API with uvicorn; unset arguments fall back to RECKONING_* settings.

    Exits with status 2, saying what to set, when the settings would serve insecurely (service.preflight):
    no API keys on a host other machines reach (unless RECKONING_ALLOW_ANONYMOUS=1), Redis without
    RECKONING_SECRET_KEY."""
    import uvicorn  # imported here so the client commands stay light

    from service import preflight
    from service.main import create_app
    from service.settings import Settings

    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if model is not None:
        overrides["model_dir"] = Path(model)
    settings = Settings(**overrides)
    problems = preflight.refusals(settings)
    if problems:
        for problem in problems:
            print(f"reckoning serve: {problem}", file=sys.stderr)
        raise SystemExit(2)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_keep_alive=settings.keep_alive_s,
        timeout_graceful_shutdown=10,
    )


def read_facts(source: str | Path, stdin: TextIO | None = None) -> list[str]:
    """Facts from a file: a JSON list, a JSON object with "facts", or one fact per line ('#' comments)."""
    text = (stdin or sys.stdin).read() if str(source) == "-" else Path(source).read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        data = json.loads(text)
        facts = data["facts"] if isinstance(data, dict) else data
        if not isinstance(facts, list) or not all(isinstance(f, str) for f in facts):
            raise ValueError("a JSON facts file must hold a list of strings (or {\"facts\": [...]})")
        return facts
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _report(call: Any) -> int:
    try:
        result = call()
    except ReckoningAPIError as exc:
        print(json.dumps({"status": exc.status_code, "detail": exc.detail}), file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"cannot reach the reckoning server: {exc}", file=sys.stderr)
        return 2
    print(result.model_dump_json(indent=2))
    return 0


def encode_cmd(file: str | Path, url: str | None = None, api_key: str | None = None, ttl_s: int | None = None) -> int:
    """Encode the facts in FILE ('-' = stdin) on a running server; prints the JSON answer, returns an exit code."""
    try:
        facts = read_facts(file)
    except (OSError, ValueError, KeyError) as exc:
        print(f"cannot read facts from {file}: {exc}", file=sys.stderr)
        return 2
    with ReckoningClient(url, api_key=api_key) as client:
        return _report(lambda: client.encode(facts, ttl_s=ttl_s))


def ask_cmd(
    knowledge_id: str,
    question: str,
    url: str | None = None,
    api_key: str | None = None,
    choices: list[str] | None = None,
) -> int:
    """Ask one question about an encoded knowledge set; prints the JSON answer, returns an exit code."""
    with ReckoningClient(url, api_key=api_key) as client:
        return _report(lambda: client.ask(knowledge_id, question, choices=choices))
