"""Shared fixtures: tiny random checkpoints (GPT-2 and Llama) and the shared data folder (required under CI=true)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(int(os.environ.get("RECKONING_TEST_THREADS", "1")))

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    from tests.support import unavailable
    from training.data.episode import data_dir

    d = data_dir()
    if not (d / "proofwriter" / "owa_dev_natlang.jsonl").exists():
        unavailable(f"shared data not found at {d} (set RECKONING_DATA_DIR)")
    return d


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reckoning_core.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-gpt2", arch="gpt2")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reckoning_core.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-llama", arch="llama")
