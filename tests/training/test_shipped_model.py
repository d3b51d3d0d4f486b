"""Regression guard: the shipped checkpoints load and keep their dev accuracy on a 20-theory slice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reckoning_core.reckoner import Reckoner
from training.data.proofwriter import read_natlang
from training.evaluate import evaluate

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "reckoning-proofwriter"
ICR = REPO / "models" / "icr-proofwriter"
# floors sit a few points under what results/eval measured on these 20 theories, for CPU noise-free slack
FLOORS = json.loads((REPO / "tests" / "training" / "shipped_floors.json").read_text())


@pytest.fixture(scope="module")
def dev_slice(shared_data: Path) -> list:
    return list(read_natlang(shared_data / "proofwriter" / "owa_dev_natlang.jsonl"))[:20]


def test_shipped_reckoning_model_keeps_its_accuracy(dev_slice: list) -> None:
    r = Reckoner.from_pretrained(MODEL)
    assert r.labels == ["True", "False", "Unknown"]
    assert sum(f.stat().st_size for f in MODEL.rglob("*") if f.is_file()) <= 50 * 1024 * 1024
    out = evaluate(r, dev_slice, method="reckoning", setting="full-theory", with_recall=False)
    assert out["n_questions"] > 300
    assert out["accuracy"] >= FLOORS["reckoning"], out
    answers = {a.answer for a in r.answer(["Bob is big.", "Bob is not big."], r.encode(["Bob is big."]).delta)}
    assert answers <= {"True", "False", "Unknown"}


def test_shipped_icr_baseline_keeps_its_accuracy(dev_slice: list) -> None:
    r = Reckoner.from_pretrained(ICR)
    out = evaluate(r, dev_slice, method="icr", setting="full-theory", with_recall=False)
    assert out["accuracy"] >= FLOORS["icr"], out
