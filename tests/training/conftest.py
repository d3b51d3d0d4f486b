"""Fixtures for the ProofWriter data tests: in CI a missing shared data folder fails instead of skipping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def proofwriter_dir() -> Path:
    from training.data.episode import data_dir

    d = data_dir() / "proofwriter"
    names = ("depth5_mixed_train.json", "owa_train.jsonl", "owa_dev_natlang.jsonl")
    missing = [n for n in names if not (d / n).exists()]
    if missing:
        msg = f"ProofWriter data missing under {d}: {missing} (set RECKONING_DATA_DIR)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    return d
