"""Security: tenants without an existence oracle, no unsafe deserialisation, fingerprinted deltas, non-root image."""

import ast
import hashlib
import json
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from rel_support import KEYS, Report, Stack, check_answers, counted_client, facts_for

from benchmarks.processes import metric

REPO = Path(__file__).resolve().parents[2]
QUESTIONS = ["Anne is kind.", "Bob is big."]


@pytest.fixture(scope="module")
def alice(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client("alice") as client:
        yield client


@pytest.fixture(scope="module")
def bob(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client("bob") as client:
        yield client


def _encode(client: httpx.Client, facts: list[str]) -> dict[str, Any]:
    response = client.post("/encode", json={"facts": facts})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _visible(response: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    """Everything a client can observe of a response except the clock."""
    headers = sorted((k, v) for k, v in response.headers.items() if k.lower() != "date")
    return response.status_code, response.content, headers


# ----------------------------------------------------------------------------- tenant isolation


def test_a_tenant_cannot_read_ask_or_delete_another_tenants_knowledge(alice: httpx.Client, bob: httpx.Client) -> None:
    facts = facts_for(f"secret{time.monotonic_ns()}", 4)
    kid = _encode(alice, facts)["knowledge_id"]
    deleted = _encode(alice, facts_for(f"gone{time.monotonic_ns()}", 3))["knowledge_id"]
    assert alice.delete(f"/knowledge/{deleted}").status_code == 204
    never = hashlib.sha256(b"never encoded by anyone").hexdigest()

    def attempts(target: str) -> list[httpx.Response]:
        return [
            bob.get(f"/knowledge/{target}"),
            bob.get(f"/knowledge/{target}", params={"include_facts": "true"}),
            bob.post("/ask", json={"knowledge_id": target, "question": "Anne is kind."}),
            bob.post("/ask", json={"knowledge_id": target, "questions": QUESTIONS, "choices": ["yes", "no"]}),
            bob.delete(f"/knowledge/{target}"),
        ]

    others, unknown, removed = attempts(kid), attempts(never), attempts(deleted)
    for mine, theirs, gone in zip(others, unknown, removed, strict=True):
        assert mine.status_code == 404
        assert mine.json() == {"detail": "unknown knowledge_id"}
        # Byte-for-byte the same as an id that never existed or was deleted: no existence oracle.
        assert _visible(mine) == _visible(theirs) == _visible(gone)

    info = alice.get(f"/knowledge/{kid}", params={"include_facts": "true"})
    assert info.status_code == 200 and info.json()["facts"] == sorted(facts)  # bob's DELETE did nothing
    asked = alice.post("/ask", json={"knowledge_id": kid, "questions": QUESTIONS})
    assert asked.status_code == 200 and check_answers(asked.json(), QUESTIONS) is None


def test_encoding_the_same_facts_does_not_reveal_another_tenants_copy(alice: httpx.Client, bob: httpx.Client) -> None:
    facts = facts_for(f"shared{time.monotonic_ns()}", 4)
    first = _encode(alice, facts)
    created = alice.get(f"/knowledge/{first['knowledge_id']}").json()["created"]
    theirs = _encode(bob, facts)
    # Bob's copy is his own: a fresh inner loop, not alice's cache (`cached` would leak that she has it).
    assert theirs["cached"] is False and theirs["encode_ms"] > 0
    assert bob.delete(f"/knowledge/{theirs['knowledge_id']}").status_code == 204
    mine = alice.get(f"/knowledge/{first['knowledge_id']}")
    assert mine.status_code == 200 and mine.json()["created"] == created


PROTECTED = [
    ("POST", "/encode", {"facts": ["Bob is kind."]}),
    ("POST", "/ask", {"knowledge_id": "0" * 64, "question": "Bob?"}),
    ("GET", "/knowledge/{kid}", None),
    ("DELETE", "/knowledge/{kid}", None),
]
BAD_AUTH: dict[str, dict[str, Any]] = {
    "none": {},
    "wrong key": {"Authorization": "Bearer not-a-key"},
    "bare scheme": {"Authorization": "Bearer"},
    "non-ASCII bytes": {"Authorization": b"Bearer \xff\xfe\x80key"},
    "other scheme": {"Authorization": f"Basic {KEYS['alice']}"},
    "key case changed": {"Authorization": f"Bearer {KEYS['alice'].upper()}"},
    "key prefix": {"Authorization": f"Bearer {KEYS['alice'][:-1]}"},
    "two keys": {"Authorization": f"Bearer {KEYS['alice']} {KEYS['bob']}"},
}


@pytest.mark.parametrize("auth", list(BAD_AUTH))
def test_without_a_valid_key_every_knowledge_route_is_401_whether_or_not_the_id_exists(
    stack: Stack, alice: httpx.Client, report: Report, auth: str
) -> None:
    kid = _encode(alice, facts_for(f"auth{time.monotonic_ns()}", 3))["knowledge_id"]
    with counted_client(report, stack.url) as anonymous:
        for method, path, body in PROTECTED:
            seen = []
            for target in (kid, "1" * 64):
                response = anonymous.request(method, path.format(kid=target), json=body, headers=BAD_AUTH[auth])
                assert response.status_code == 401, (method, path, response.text)
                assert response.headers.get("WWW-Authenticate") == "Bearer"
                seen.append(_visible(response))
            assert seen[0] == seen[1]
        for open_path in ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"):  # the README says so
            assert anonymous.get(open_path).status_code == 200, open_path
    assert alice.get(f"/knowledge/{kid}").status_code == 200


def test_metrics_never_carry_a_knowledge_id(stack: Stack, alice: httpx.Client) -> None:
    kid = _encode(alice, facts_for(f"metric{time.monotonic_ns()}", 3))["knowledge_id"]
    alice.post("/ask", json={"knowledge_id": kid, "question": "Bob?"})
    text = alice.get("/metrics").text
    assert "reckoning_requests_total" in text
    assert kid not in text and not re.search(r"[0-9a-f]{64}", text)


# ----------------------------------------------------------------------------- planted deltas and records
#
# Whoever can write Redis can write any blob, header and "checksum" there. Every stored delta and facts record
# carries a keyed MAC over its bytes, tenant, id and model: without the servers' secret none of these verifies.
# A forged delta is refused where it is loaded and rebuilt from the (signed) facts; a forged record is a 409.
# The replica that encoded a set keeps its weights under the delta's MAC, so a blob swapped under the same MAC
# is loaded (and refused) by a replica that has to read it: the cold `replica` is asked first.


def _answers(client: httpx.Client, kid: str) -> list[dict[str, Any]]:
    response = client.post("/ask", json={"knowledge_id": kid, "questions": QUESTIONS})
    assert response.status_code == 200, response.text
    answers: list[dict[str, Any]] = response.json()["answers"]
    return answers


def _same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    return all(x["answer"] == y["answer"] and all(abs(x["scores"][c] - y["scores"][c]) < 1e-4 for c in x["scores"])
               for x, y in zip(a, b, strict=True))  # fmt: skip


def _reblob(blob: bytes, change: Any) -> bytes:
    """The blob's tensors changed by `change`, written back as a perfectly valid delta blob: right format, the
    served model's fingerprint and encode hash, a checksum that matches. Only a MAC can tell."""
    from safetensors.torch import load

    from reckoning_core.serialization import dumps, loads

    meta = json.loads(blob[8 : 8 + int.from_bytes(blob[:8], "little")])["__metadata__"]
    forged = dumps(change(load(blob)), meta["fingerprint"], meta["encode"], meta["dtype"])
    loads(forged, meta["fingerprint"], meta["encode"])  # passes every unkeyed check
    return forged


def _negated(tensors: dict[str, Any]) -> dict[str, Any]:
    return {k: -v for k, v in tensors.items()}


def _one_broadcast_tensor(tensors: dict[str, Any]) -> dict[str, Any]:
    import torch

    name = next(k for k, v in tensors.items() if v.dim() == 2)
    return {**tensors, name: torch.full((1,), 50.0, dtype=tensors[name].dtype)}  # would shift the whole matrix


def _nan(tensors: dict[str, Any]) -> dict[str, Any]:
    name = next(k for k, v in tensors.items() if v.dim() == 2)
    poisoned = tensors[name].clone()
    poisoned[0, 0] = float("nan")
    return {**tensors, name: poisoned}


DELTA_FORGERIES = {
    "valid_header_over_a_wrong_payload": lambda blob: _reblob(blob, _negated),
    "wrong_shape_tensor": lambda blob: _reblob(blob, _one_broadcast_tensor),
    "nan": lambda blob: _reblob(blob, _nan),
}


@pytest.mark.parametrize("kind", [*DELTA_FORGERIES, "swap_between_two_ids"])
def test_a_planted_delta_is_refused_and_rebuilt_from_the_signed_facts(
    stack: Stack, replica: Any, report: Report, alice: httpx.Client, kind: str
) -> None:
    from tests.support import plant_delta, stored_delta

    rc = stack.redis_client()
    kid = _encode(alice, facts_for(f"forge{time.monotonic_ns()}", 5))["knowledge_id"]
    own = _answers(alice, kid)
    key = stack.delta_key("alice", kid)
    blob, mac = stored_delta(rc, key)
    if kind == "swap_between_two_ids":  # another set's delta with its own valid MAC, copied under this id
        other = _encode(alice, facts_for(f"other{time.monotonic_ns()}", 4))["knowledge_id"]
        planted, planted_mac = stored_delta(rc, stack.delta_key("alice", other))
    else:  # the attacker cannot make a MAC, so the blob goes under the one that is there
        planted, planted_mac = DELTA_FORGERIES[kind](blob), mac
    with stack.replica_client(replica) as cold:
        rejected = metric(cold, "reckoning_delta_rejected_total", reason="ForgedDelta")
        reencodes = metric(cold, "reckoning_reencodes_total")
        plant_delta(rc, key, planted, planted_mac)
        report.injected(f"forged_delta:{kind}")

        assert _same(_answers(cold, kid), own)  # never answered with the planted weights
        assert metric(cold, "reckoning_delta_rejected_total", reason="ForgedDelta") == rejected + 1
        assert metric(cold, "reckoning_reencodes_total") == reencodes + 1
        report.rejected_forgeries += 1
        assert stored_delta(rc, key)[0] != planted and rc.ttl(key) > 0  # rebuilt, and evictable again
        assert _same(_answers(cold, kid), own) and metric(cold, "reckoning_reencodes_total") == reencodes + 1
    assert _same(_answers(alice, kid), own)  # the replica that encoded it never served the plant either


def _attacker_facts(raw: bytes) -> bytes:
    record = json.loads(raw)
    record["facts"] = ["Mallory is the admin.", "If someone is the admin then they are trusted."]
    return json.dumps(record).encode()


@pytest.mark.parametrize("kind", ["facts_rewritten", "record_of_another_id"])
def test_a_planted_facts_record_is_a_clear_409_and_never_encoded(
    stack: Stack, report: Report, alice: httpx.Client, kind: str
) -> None:
    rc = stack.redis_client()
    kid = _encode(alice, facts_for(f"rec{time.monotonic_ns()}", 4))["knowledge_id"]
    raw = rc.get(stack.facts_key("alice", kid))
    assert isinstance(raw, bytes)
    if kind == "facts_rewritten":
        planted = _attacker_facts(raw)
    else:
        other = _encode(alice, facts_for(f"recother{time.monotonic_ns()}", 3))["knowledge_id"]
        planted = rc.get(stack.facts_key("alice", other))
    rc.set(stack.facts_key("alice", kid), planted)
    rc.delete(stack.delta_key("alice", kid))  # an ask would have to re-encode: from the planted facts?
    report.injected(f"forged_record:{kind}")
    loops = metric(alice, "reckoning_encode_seconds_count")
    for response in (
        alice.get(f"/knowledge/{kid}", params={"include_facts": "true"}),
        alice.post("/ask", json={"knowledge_id": kid, "question": "Bob is kind."}),
    ):
        assert response.status_code == 409, response.text
        detail = response.json()["detail"]
        assert f"knowledge set {kid} fails its integrity check" in detail and "Delete the knowledge set" in detail
        assert "Mallory" not in response.text
    assert metric(alice, "reckoning_encode_seconds_count") == loops  # no inner loop ran on the planted text
    report.rejected_forgeries += 1
    assert alice.delete(f"/knowledge/{kid}").status_code == 204  # the tenant can still remove it


# ----------------------------------------------------------------------------- no unsafe deserialisation

BANNED_MODULES = {"pickle", "cPickle", "_pickle", "pickletools", "marshal", "shelve", "dill", "cloudpickle",
                  "joblib", "jsonpickle"}  # fmt: skip
BANNED_CALLS = {"yaml.unsafe_load", "yaml.unsafe_load_all", "yaml.full_load", "yaml.full_load_all", "yaml.load_all"}
BANNED_LEAVES = {"read_pickle", "to_pickle"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_deserialisation(source: str, filename: str = "<src>") -> list[str]:
    """Every place in `source` that could unpickle (or otherwise run code from) data it loads."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [f"{where} import {a.name}" for a in node.names if a.name.split(".")[0] in BANNED_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in BANNED_MODULES:
            found.append(f"{where} from {node.module} import")
        elif isinstance(node, ast.ImportFrom) and node.module == "torch" and any(a.name == "load" for a in node.names):
            found.append(f"{where} from torch import load (call sites cannot be checked)")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            leaf = name.rsplit(".", 1)[-1]
            if name in {"__import__", "importlib.import_module", "import_module"} and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and str(arg.value).split(".")[0] in BANNED_MODULES:
                    found.append(f"{where} dynamic import of {arg.value!r}")
            if name in {"torch.load", "torch.serialization.load"} and not _is_true(_kw(node, "weights_only")):
                found.append(f"{where} {name} without weights_only=True")
            if name.endswith(("jit.load", "hub.load", "package.PackageImporter")):
                found.append(f"{where} {name}")
            if name in BANNED_CALLS or leaf in BANNED_LEAVES:
                found.append(f"{where} {name}")
            if _is_true(_kw(node, "allow_pickle")) or _is_true(_kw(node, "trust_remote_code")):
                found.append(f"{where} {name} with allow_pickle/trust_remote_code=True")
            if name == "yaml.load":
                loader = _kw(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
                if loader is None or not _dotted(loader).endswith("SafeLoader"):
                    found.append(f"{where} yaml.load without a SafeLoader")
            if isinstance(node.func, ast.Name) and node.func.id in {"eval", "exec"}:
                found.append(f"{where} {node.func.id}()")
    return found


UNSAFE_SAMPLES = [
    "import pickle",
    "import pickle as p",
    "import os, marshal",
    "from pickle import loads",
    "from _pickle import Unpickler",
    "import dill.settings",
    "import shelve",
    "import joblib",
    "import importlib\nimportlib.import_module('pickle')",
    "__import__('cloudpickle')",
    "import torch\ntorch.load('x.pt')",
    "import torch\ntorch.load('x.pt', weights_only=False)",
    "import torch\ntorch.load(f, map_location='cpu')",
    "from torch import load",
    "import torch\ntorch.jit.load('m.pt')",
    "import torch\ntorch.hub.load('repo', 'model')",
    "import numpy as np\nnp.load('a.npy', allow_pickle=True)",
    "import pandas as pd\npd.read_pickle('x')",
    "import yaml\nyaml.load(s)",
    "import yaml\nyaml.load(s, Loader=yaml.Loader)",
    "import yaml\nyaml.unsafe_load(s)",
    "from transformers import AutoModel\nAutoModel.from_pretrained('m', trust_remote_code=True)",
    "eval(text)",
    "exec(code)",
]
SAFE_SAMPLES = [
    "import torch\ntorch.load('x.pt', weights_only=True, mmap=True)",
    "import yaml\nyaml.safe_load(s)",
    "import yaml\nyaml.load(s, Loader=yaml.SafeLoader)",
    "model.eval()",
    "import json\njson.loads(s)",
    "from safetensors.torch import load_file",
    "text = 'never import pickle'",
    "import numpy as np\nnp.load('a.npy')",
]


@pytest.mark.parametrize("source", UNSAFE_SAMPLES)
def test_the_scanner_flags_unsafe_deserialisation(source: str) -> None:
    assert unsafe_deserialisation(source), source


@pytest.mark.parametrize("source", SAFE_SAMPLES)
def test_the_scanner_passes_safe_code(source: str) -> None:
    assert unsafe_deserialisation(source) == [], source


def repo_python_files() -> list[Path]:
    """Tracked and untracked-but-not-ignored Python files (the code base, not caches or venvs)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "*.py"],
            cwd=REPO, check=True, capture_output=True, timeout=30,
        ).stdout.decode().split("\0")  # fmt: skip
        files = [REPO / name for name in listed if name]
    except (OSError, subprocess.SubprocessError):
        skip = {".git", "models", "runs", "results", "build", "dist"}
        files = [p for p in REPO.rglob("*.py") if not skip & set(p.relative_to(REPO).parts[:1])]
    return [f for f in files if f.is_file()]


def test_no_unsafe_deserialisation_anywhere_in_the_code_base() -> None:
    files = repo_python_files()
    assert len(files) > 20 and REPO / "service" / "store" / "redis_store.py" in files
    found = [hit for f in files for hit in unsafe_deserialisation(f.read_text(), str(f.relative_to(REPO)))]
    assert found == [], "\n".join(found)


# ----------------------------------------------------------------------------- container user


def dockerfile_final_user(text: str) -> str | None:
    """The user the final stage runs as (None = root by default), with ARG/ENV defaults expanded."""
    joined = re.sub(r"\\\r?\n", " ", text)
    lines = [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    user: str | None = None
    variables: dict[str, str] = {}
    for line in lines:
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            user = None  # every stage starts as root again
        elif instruction in {"ARG", "ENV"}:
            for item in shlex.split(rest):
                name, sep, value = item.partition("=")
                if sep:
                    variables[name] = value
        elif instruction == "USER":
            user = re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m.group(1), m.group(0)), rest.strip())
    return user


def is_root(user: str | None) -> bool:
    return user is None or user.split(":")[0] in {"root", "0", ""} or "$" in user


@pytest.mark.parametrize(
    ("text", "root"),
    [
        ("FROM python:3.11\nCMD python", True),
        ("FROM python:3.11\nUSER app\nUSER root\nCMD python", True),
        ("FROM python:3.11\nUSER 0:0", True),
        ("FROM base AS build\nUSER app\nFROM base\nCMD python", True),
        ("FROM python:3.11\nUSER $RUNAS", True),
        ("FROM python:3.11\nRUN useradd app\nUSER app\nCMD python", False),
        ("ARG UID=10001\nFROM python:3.11\nUSER ${UID}:${UID}", False),
    ],
)
def test_the_dockerfile_check_itself(text: str, root: bool) -> None:
    assert is_root(dockerfile_final_user(text)) is root


def test_every_image_runs_as_a_non_root_user() -> None:
    dockerfiles = [p for p in (REPO / "docker").glob("Dockerfile*") if not p.name.endswith(".dockerignore")]
    dockerfiles += list(REPO.glob("Dockerfile*"))
    assert dockerfiles
    for path in dockerfiles:
        text = path.read_text()
        user = dockerfile_final_user(text)
        assert not is_root(user), f"{path.name} runs as {user or 'root (no USER)'}"
        name = user.split(":")[0] if user else ""
        # the user is made here, or by the Debian package that owns it (redis-server makes `redis`)
        made_by_package = {"redis": "redis-server"}.get(name)
        assert (name.isdigit() or re.search(rf"(useradd|adduser)\b.*\b{name}\b", text)
                or (made_by_package and re.search(rf"apt-get install\b.*\b{made_by_package}\b", text, re.S))), \
            f"{name} is never created"
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    for name, service in compose.get("services", {}).items():
        assert str(service.get("user", "")).split(":")[0] not in {"root", "0"}, f"compose service {name} runs as root"
