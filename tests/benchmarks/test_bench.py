"""The benchmark suite end to end on a tiny checkpoint: every contract key present, with sane types."""

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from benchmarks.config import BenchConfig
from benchmarks.data import distinct_sets, load_dev_theories, typical_theory
from benchmarks.latency import break_even
from benchmarks.report import check_targets, render_table, small_delta_option
from benchmarks.run import run_bench, write_outputs
from reckoning_core.device import DEFAULT_INNER_AUTOCAST, resolve_autocast

NAMES = ["Anne", "Bob", "Carol", "Dave", "Erin"]
ATTRS = ["blue", "kind", "round", "red", "nice", "big"]


def _theory(i: int) -> dict[str, Any]:
    """A small theory in the owa_dev_natlang layout (only the fields the bench reads)."""
    facts = {f"triple{k + 1}": {"text": f"{NAMES[(i + k) % 5]} is {ATTRS[(i + 2 * k) % 6]}."} for k in range(3 + i % 2)}
    rules = {"rule1": {"text": f"If someone is {ATTRS[i % 6]} then they are {ATTRS[(i + 1) % 6]}."}}
    answers: list[Any] = [True, False, "Unknown", True]
    questions = {f"Q{k + 1}": {"question": f"{NAMES[k % 5]} is {ATTRS[(i + k) % 6]}.", "answer": answers[k],
                               "QDep": 0} for k in range(4)}
    return {"id": f"synthetic-{i}", "triples": facts, "rules": rules, "questions": questions}


@pytest.fixture(scope="module")
def dev_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "owa_dev_natlang.jsonl"
    path.write_text("".join(json.dumps(_theory(i)) + "\n" for i in range(5)))
    return path


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def test_break_even() -> None:
    assert break_even(100.0, 5.0, 15.0) == 11  # 100 + 10*5 = 150 == 10*15, so 11 is the first strictly below
    assert break_even(100.0, 5.0, 5.0) is None


def test_fact_sets_are_distinct_and_bounded(dev_file: Path) -> None:
    theories = load_dev_theories(dev_file)
    sets = [frozenset(f) for f, _ in distinct_sets(theories, 12)]
    assert len(sets) == len(set(sets)) == 12
    assert typical_theory(theories).id.startswith("synthetic-")
    with pytest.raises(ValueError):
        list(distinct_sets(theories, 10_000))


def test_bench_end_to_end(tiny_gpt2: Path, dev_file: Path, tmp_path: Path) -> None:
    cfg = replace(
        BenchConfig.preset(quick=True, model=tiny_gpt2, out=tmp_path / "results" / "bench.json"),
        data_path=dev_file, warmup=1, encode_repeats=2, ask_repeats=3, amortization_max_n=4,
        amortization_repeats=1, batched_n=4, batched_repeats=2, option_theories=2, lora_ranks=(2,),
        http_concurrency=4, http_seconds=1.0, http_warmup_s=0.2, http_distinct_ids=3,
        icr_model=tiny_gpt2, device="cpu", scaling_sizes=(4, 70), scaling_sets=1, scaling_repeats=1,
        scaling_ask_repeats=2, encode_option_theories=2, encode_option_steps=(1,), adaptive_thresholds=(0.5,),
        option_model=None, encode_batch_sizes=(1, 2), encode_batch_repeats=1,
    )
    data = run_bench(cfg)
    for key in ("encode_ms", "ask_ms", "plain_ms", "icr_ms", "ask_overhead", "icr_over_ask", "batched_ask_speedup",
                "server_rss_mb_1000_sets"):
        assert _number(data[key]) and data[key] > 0, key
    assert data["break_even_questions"] is None or (isinstance(data["break_even_questions"], int)
                                                    and data["break_even_questions"] >= 1)
    assert isinstance(data["delta_bytes"], int) and data["delta_bytes"] > 0

    for key in ("icr_prefix_prefill_ms", "icr_prefix_ms", "kv_cache_bytes", "icr_prefix_over_ask"):
        assert _number(data[key]) and data[key] > 0, key
    be = data["break_even_questions_prefix"]
    assert be is None or (isinstance(be, int) and be >= 1)
    assert set(data["encode_sets_per_s"]) == {"1", "2"} and all(v > 0 for v in data["encode_sets_per_s"].values())
    la = data["load_average"]
    assert len(la["start"]) == len(la["end"]) == 3 and la["cpu_count"] >= 1

    rows = data["scaling"]
    assert [r["n_facts"] for r in rows] == [4, 70]
    row_keys = ("n_facts", "fact_tokens", "encode_ms", "ask_ms", "icr_ms", "icr_prefix_ms", "delta_bytes",
                "kv_cache_bytes", "accuracy_reckoning", "accuracy_icr", "icr_fits")
    for r in rows:
        assert set(row_keys) <= set(r), r
        assert r["delta_bytes"] > 0 and r["encode_ms"] > 0 and r["ask_ms"] > 0
        assert 0.0 <= r["accuracy_reckoning"] <= 1.0 and r["n_questions"] > 0
    small, big = rows
    assert small["icr_fits"] and small["icr_ms"] > 0 and small["icr_prefix_ms"] > 0 and small["kv_cache_bytes"] > 0
    assert 0.0 <= small["accuracy_icr"] <= 1.0
    # 70 sentences do not fit the tiny model's 256 positions: the in-context fields are null and say why
    assert not big["icr_fits"] and big["note"] and big["icr_prompt_tokens"] > big["context_window"]
    assert big["icr_ms"] is None and big["icr_prefix_ms"] is None and big["accuracy_icr"] is None
    assert big["kv_cache_bytes"] is None and big["kv_cache_bytes_needed"] > small["kv_cache_bytes"]

    cheaper = data["cheaper_encodes"]
    names = [v["name"] for v in cheaper["variants"]]
    assert names[0].endswith("(shipped)") and any("stop once" in n for n in names) and any("K=1" in n for n in names)
    for v in cheaper["variants"]:
        assert 0.0 <= v["accuracy"] <= 1.0 and v["encode_ms"] > 0 and 0 <= v["mean_steps"] <= v["inner_steps"]
    assert cheaper["tokens_per_fact"]["with_template"] >= cheaper["tokens_per_fact"]["plain"] > 0

    am = data["amortization"]
    assert am["n"] == [1, 2, 3, 4] and len(am["reckoning_ms"]) == len(am["icr_ms"]) == 4
    assert all(b >= a for a, b in zip(am["icr_ms"], am["icr_ms"][1:], strict=False))  # running totals

    http = data["http"]
    assert http["n_distinct_ids"] == 3 and http["concurrency"] == 4 and http["rounds"] == 2
    assert _number(http["many_over_one"])
    for scenario in ("hot", "distinct"):
        s = http[scenario]
        assert s["asks"] > 0 and s["errors"] == 0 and s["reencodes"] == 0
        assert all(_number(s[k]) for k in ("asks_per_s", "p50_ms", "p99_ms")) and s["p99_ms"] >= s["p50_ms"]
    assert data["server_rss_sets"] == 4  # the hot set and three distinct ones

    opts = data["delta_options"]
    names = [o["name"] for o in opts["options"]]
    assert len(names) == len(set(names)) and opts["options"][0]["trained_selection"]
    assert {o["storage_dtype"] for o in opts["options"]} == {"float32", "float16", "bfloat16"}
    assert {o["selection"]["mode"] for o in opts["options"]} == {"patterns", "all", "lora"}
    for o in opts["options"]:
        assert isinstance(o["bytes"], int) and o["bytes"] > 0 and 0.0 <= o["accuracy"] <= 1.0, o
    by_name = {o["name"]: o for o in opts["options"]}
    fp32, fp16 = by_name[opts["exact"]], by_name[opts["exact"].replace("fp32", "fp16")]
    assert fp16["bytes"] < fp32["bytes"] and fp32["accuracy_drop_pts"] == 0.0 and fp32["agreement_with_exact"] == 1.0
    assert [o["name"] for o in opts["options"] if o["service_default"]] == [opts["default"]]
    svd = {o["svd_rank"]: o for o in opts["options"] if "svd_rank" in o}
    assert sorted(svd) == sorted(cfg.svd_ranks) and svd[min(svd)]["bytes"] < fp16["bytes"]
    assert all(0.0 < o["kept_energy"] <= 1.0 + 1e-6 for o in svd.values())

    m = data["machine"]
    assert m["torch_threads"] == 1 and m["cpu_count"] >= 1 and m["torch"]
    assert len(data["model"]["fingerprint"]) == 64
    # the service's default inner-loop precision, and what it resolved to here
    assert data["model"]["inner_autocast_setting"] == DEFAULT_INNER_AUTOCAST
    assert data["model"]["inner_autocast"] == resolve_autocast(DEFAULT_INNER_AUTOCAST, m["device"])
    assert {t["key"] for t in data["targets"]} == {"ask_overhead", "icr_over_ask", "break_even_questions",
                                                    "many_over_one", "small_delta_option", "ask_flat",
                                                    "delta_over_kv_64", "accuracy_256"}

    paths = write_outputs(data, cfg.out)
    assert json.loads(paths["json"].read_text())["schema"] == "reckoning-bench/1"
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths["scaling_png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = paths["md"].read_text()
    for figure in ("ask_overhead", "break_even_questions", "many_over_one", "server_rss_mb_1000_sets",
                   "Delta options", "Where each method wins", "Prefix-cached in-context baseline",
                   "Scaling with knowledge size", "Cheaper encodes", "Batched encodes", "Beyond the context window"):
        assert figure in md


def test_targets_and_report_from_numbers_alone() -> None:
    data: dict[str, Any] = {
        "ask_overhead": 1.1, "icr_over_ask": 1.5, "break_even_questions": None, "http": {"many_over_one": 0.9},
        "delta_options": {"options": [
            {"name": "a", "bytes": 8_000_000, "accuracy": 0.7, "accuracy_drop_pts": 0.0},
            {"name": "b", "bytes": 900_000, "accuracy": 0.67, "accuracy_drop_pts": 3.0},
            {"name": "c", "bytes": 400_000, "accuracy": 0.695, "accuracy_drop_pts": 0.5},
        ]},
    }
    status = {c["key"]: c["status"] for c in check_targets(data)}
    assert status == {"ask_overhead": "pass", "icr_over_ask": "miss", "break_even_questions": "n/a",
                      "many_over_one": "pass", "small_delta_option": "pass", "ask_flat": "n/a",
                      "delta_over_kv_64": "n/a", "accuracy_256": "n/a"}
    data["scaling"] = [
        {"n_facts": 4, "ask_ms": 10.0, "delta_bytes": 4_000_000, "kv_cache_bytes": 100_000, "icr_fits": True},
        {"n_facts": 64, "ask_ms": 10.5, "delta_bytes": 4_000_000, "kv_cache_bytes": None,
         "kv_cache_bytes_needed": 2_000_000, "icr_fits": False},
        {"n_facts": 256, "ask_ms": 13.0, "delta_bytes": 4_000_000, "kv_cache_bytes": None,
         "kv_cache_bytes_needed": 8_000_000, "icr_fits": False, "accuracy_reckoning": 0.95},
    ]
    status = {c["key"]: (c["status"], c["value"]) for c in check_targets(data)}
    assert status["ask_flat"] == ("miss", 1.3) and status["delta_over_kv_64"] == ("miss", 2.0)
    assert status["accuracy_256"] == ("pass", 0.95)
    best = small_delta_option(data)
    assert best is not None and best["name"] == "c"
    assert "| ask_overhead = ask_ms / plain_ms | 1.1 | <= 1.15 | pass |" in render_table(data)


def test_many_over_one_is_not_reported_when_a_scenario_was_refused() -> None:
    from benchmarks.http import many_over_one

    ok = {"errors": 0, "asks_per_s": 100.0}
    assert many_over_one(ok, {"errors": 0, "asks_per_s": 95.0}) == 0.95
    assert many_over_one({"errors": 11300, "asks_per_s": 100.0}, {"errors": 0, "asks_per_s": 95.0}) is None
    assert many_over_one(ok, {"errors": 3, "asks_per_s": 95.0}) is None
