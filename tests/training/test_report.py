"""training.report: the option-vs-default sentence comes from the eval files; the step table stays readable."""

import json
from pathlib import Path

import pytest

from training import report


def _write(folder: Path, model: str, tag: str, **fields: float) -> None:
    (folder / f"{model}--reckoning--{tag}.json").write_text(json.dumps(fields))


def test_comparison_reads_every_column_both_models_have(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "EVAL_DIR", tmp_path)
    _write(tmp_path, "opt", "gen-1-4", accuracy=0.935, recall=0.883)
    _write(tmp_path, "base", "gen-1-4", accuracy=0.918, recall=0.908)
    _write(tmp_path, "opt", "full-theory", accuracy=0.936)
    _write(tmp_path, "base", "full-theory", accuracy=0.944)
    _write(tmp_path, "opt", "proof-only", accuracy=0.854)  # the default has none: left out
    got = report.compare_with_default("models/opt", "models/base")
    assert got == ("Against the default, in points: generated 1-4 +1.7, owa full theory -0.8, "
                   "fact recall (generated 1-4) -2.5.")
    assert report.compare_with_default("models/none", "models/base") == ""


def test_step_table_keeps_to_its_column_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(json.dumps({"step": s, "val_acc": 0.5}) for s in range(100, 4600, 100)) + "\n")
    monkeypatch.setattr(report, "CURVES", {"run": str(log)})
    header = report.val_by_step_table().splitlines()[0]
    columns = header.strip("| ").split(" | ")[1:]
    assert len(columns) <= report.MAX_STEP_COLUMNS
    assert columns[:2] == ["200", "400"]


def test_error_kinds_table_has_a_column_per_file_and_a_dash_where_a_kind_is_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    (tmp_path / "data").mkdir()
    kinds = {"provable": {"accuracy": 0.8, "n": 160}, "unknown/rule/stated": {"accuracy": 0.4464, "n": 56}}
    proofs = {"negated condition": {"accuracy": 0.25, "n": 4}}
    (tmp_path / "data" / "error-kinds--m--depth5-dev.json").write_text(json.dumps({"by_kind": kinds,
                                                                                  "by_proof": proofs}))
    lines = report.error_kinds_table().splitlines()
    assert lines[0] == "| question kind | m, depth5-dev |"
    assert "| True or False (provable) | 80.0 (160) |" in lines
    assert "| Unknown, a rule concludes it, about an entity a fact names | 44.6 (56) |" in lines
    assert "| Unknown, about an entity absent from the knowledge | – |" in lines
    assert "| provable: through a rule with a negated condition | 25.0 (4) |" in lines
    assert "| provable: a stated fact | – |" in lines


def test_evaluate_keeps_to_the_models_and_tags_asked_and_sorts_errors_by_kind(
        tiny_gpt2: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hand = str(Path(__file__).resolve().parents[2] / "training" / "evalsets" / "handwritten.json")
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    monkeypatch.setattr(report, "EVAL_DIR", tmp_path / "eval")
    (tmp_path / "data").mkdir()
    monkeypatch.setattr(report, "FULL_RUNS", [("tiny", str(tiny_gpt2), "reckoning"),
                                              ("other", "models/x", "reckoning")])
    monkeypatch.setattr(report, "FULL_EVALS", [("handwritten", hand, "all", 2),
                                               ("gen-1-4", "generated:1-4:3", "all", None)])
    report.run_full_evals(False, 1, models=[str(tiny_gpt2)], tags=["handwritten"])
    assert [p.name for p in (tmp_path / "eval").glob("*.json")] == [f"{tiny_gpt2.name}--reckoning--handwritten.json"]
    kinds = json.loads((tmp_path / "data" / f"error-kinds--{tiny_gpt2.name}--handwritten.json").read_text())
    n = json.loads((tmp_path / "eval" / f"{tiny_gpt2.name}--reckoning--handwritten.json").read_text())["n_questions"]
    assert sum(k["n"] for k in kinds["by_kind"].values()) == n > 0
    with pytest.raises(SystemExit, match="--tags nope: unknown"):
        report.report(evaluate=True, tags=["nope"])
