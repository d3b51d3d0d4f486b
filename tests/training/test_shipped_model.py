"""Regression guard: the shipped checkpoints load, stay within 50 MB and keep their accuracy on fixed slices.

Floors (tests/training/shipped_floors.json) sit a few points under what `reckoning eval` measured on exactly these
slices, and every model must also beat chance on each label separately, which a model stuck answering one label
(the majority-class plateau) cannot do.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reckoning_core.reckoner import Reckoner
from training.cli import generated_sets, read_eval_data
from training.data.episode import Episode
from training.data.proofwriter import read_natlang
from training.evaluate import evaluate

REPO = Path(__file__).resolve().parents[2]
FLOORS = json.loads((REPO / "tests" / "training" / "shipped_floors.json").read_text())
# (model folder, method)
MODELS = {"reckoning-proofwriter": "reckoning", "reckoning-full": "reckoning", "reckoning-full6": "reckoning",
          "reckoning-full-k2": "reckoning", "icr-full": "icr"}


def slices(shared: Path) -> dict[str, list[Episode]]:
    """The fixed slices the floors were measured on."""
    return {
        "owa-dev-20": list(read_natlang(shared / "proofwriter" / "owa_dev_natlang.jsonl"))[:20],
        "depth5-dev-20": read_eval_data(shared / "proofwriter" / "depth5_mixed_train.json", "dev")[:20],
        "generated-1-4": generated_sets("generated:1-4:60"),
        "handwritten": read_eval_data(REPO / "training" / "evalsets" / "handwritten.json"),
    }


@pytest.fixture(scope="module")
def eval_slices(proofwriter_dir: Path) -> dict[str, list[Episode]]:
    return slices(proofwriter_dir.parent)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_shipped_model_keeps_its_accuracy_on_every_slice(name: str, eval_slices: dict[str, list[Episode]]) -> None:
    folder = REPO / "models" / name
    assert sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) <= 50 * 1024 * 1024
    r = Reckoner.from_pretrained(folder)
    assert r.labels == ["True", "False", "Unknown"]
    for slice_name, floor in FLOORS[name].items():
        out = evaluate(r, eval_slices[slice_name], method=MODELS[name], with_recall=False)
        assert out["accuracy"] >= floor, (name, slice_name, out["accuracy"], floor)
        confusion = out["confusion"]  # gold -> predicted -> count: every question once, its diagonal the hits
        assert sum(sum(row.values()) for row in confusion.values()) == out["n_questions"]
        assert sum(row.get(gold, 0) for gold, row in confusion.items()) == round(out["accuracy"] * out["n_questions"])
        if slice_name == FLOORS["per_label"][name]:  # on the model's own language: every label above chance
            assert min(out["by_answer"].values()) > 1 / 3, (name, slice_name, out["by_answer"])


def measure() -> dict[str, dict[str, float]]:
    """`python -m tests.training.test_shipped_model` prints what each model scores on each slice."""
    from training.data.episode import data_dir

    got: dict[str, dict[str, float]] = {}
    for name, method in MODELS.items():
        r = Reckoner.from_pretrained(REPO / "models" / name)
        got[name] = {k: evaluate(r, eps, method=method, with_recall=False)["accuracy"]
                     for k, eps in slices(data_dir()).items()}
    return got


if __name__ == "__main__":
    print(json.dumps(measure(), indent=1))
