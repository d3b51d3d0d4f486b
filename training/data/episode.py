"""The one episode type every reader and generator produces."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Question:
    text: str
    answer: str  # "True"/"False"/"Unknown" for ProofWriter, a relation for CLUTRR
    depth: int | None = None
    proof_facts: tuple[str, ...] | None = None  # facts and rules of the proof (ProofWriter)
    grammar: str | None = None  # ProofWriter grammar (AttNoneg, AttNeg, RelNoneg, RelNeg) when known


@dataclass(frozen=True)
class Episode:
    id: str
    facts: tuple[str, ...]
    questions: tuple[Question, ...]
    source: str  # "owa_train", "owa_dev", "gen", "clutrr", "clutrr-gen"


def data_dir() -> Path:
    """The shared data folder: RECKONING_DATA_DIR, else ../shared/data beside the repo."""
    env = os.environ.get("RECKONING_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"
