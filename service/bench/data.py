"""ProofWriter dev theories for the benchmark, read straight from owa_dev_natlang.jsonl (no training import)."""

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
DEV_FILE = Path("proofwriter") / "owa_dev_natlang.jsonl"


@dataclass(frozen=True)
class DevQuestion:
    text: str
    answer: str  # True | False | Unknown


@dataclass(frozen=True)
class DevTheory:
    id: str
    facts: tuple[str, ...]  # the clean triple and rule sentences, in file order
    questions: tuple[DevQuestion, ...]


def data_dir() -> Path:
    env = os.environ.get("RECKONING_DATA_DIR")
    return Path(env) if env else _REPO.parent / "shared" / "data"


def dev_path() -> Path:
    return data_dir() / DEV_FILE


def _label(value: object) -> str:
    # the file stores True/False as JSON booleans and Unknown as a string
    if value is True or value in ("True", "true"):
        return "True"
    if value is False or value in ("False", "false"):
        return "False"
    if value == "Unknown":
        return "Unknown"
    raise ValueError(f"not a ProofWriter label: {value!r}")


def load_dev_theories(path: Path | None = None) -> list[DevTheory]:
    path = path or dev_path()
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; set RECKONING_DATA_DIR to the shared data folder")
    theories = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            d = json.loads(line)
            facts = tuple(v["text"] for v in {**d["triples"], **d["rules"]}.values())
            questions = tuple(DevQuestion(q["question"], _label(q["answer"])) for q in d["questions"].values())
            theories.append(DevTheory(str(d["id"]), facts, questions))
    if not theories:
        raise ValueError(f"{path} holds no theories")
    return theories


def typical_theory(theories: list[DevTheory]) -> DevTheory:
    """The median theory by number of sentences (ties broken by id): 'a typical full theory'."""
    ordered = sorted(theories, key=lambda t: (len(t.facts), t.id))
    return ordered[len(ordered) // 2]


def distinct_sets(theories: list[DevTheory], n: int) -> Iterator[tuple[tuple[str, ...], DevTheory]]:
    """n different, realistic fact sets: every dev theory whole, then each with one sentence left
    out (sentence 0 of every theory, then sentence 1, ...), so sizes stay those of real theories."""
    seen: set[frozenset[str]] = set()
    made = 0
    max_facts = max(len(t.facts) for t in theories)
    for drop in range(-1, max_facts):
        for theory in theories:
            if drop >= len(theory.facts):
                continue
            facts = theory.facts if drop < 0 else theory.facts[:drop] + theory.facts[drop + 1 :]
            key = frozenset(" ".join(f.split()) for f in facts)
            if not facts or key in seen:
                continue
            seen.add(key)
            yield facts, theory
            made += 1
            if made >= n:
                return
    raise ValueError(f"only {made} distinct fact sets can be made from {len(theories)} theories, {n} wanted")
