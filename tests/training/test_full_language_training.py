"""The full-language training data path: the weighted mixture, the depth5 split, and eval's readers."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.cli import generated_sets, read_eval_data
from training.config import TrainConfig
from training.data.depth5 import read_depth5_mixed
from training.data.pw_logic import Theory, parse_statement, solve
from training.data.sampling import MixSampler, Splits, split_depth5
from training.evaluate import size_bucket

REPO = Path(__file__).resolve().parents[2]


def test_depth5_split_is_fixed_disjoint_and_about_a_fifth(proofwriter_dir: Path) -> None:
    episodes = read_depth5_mixed(proofwriter_dir / "depth5_mixed_train.json")
    train, dev = split_depth5(episodes)
    assert len(train) + len(dev) == len(episodes)
    assert not {e.facts for e in train} & {e.facts for e in dev}
    assert 0.15 < len(dev) / len(episodes) < 0.25
    assert [e.id for e in split_depth5(episodes)[1]] == [e.id for e in dev]  # the same split every time


def test_mix_sampler_draws_every_source_with_solver_labels(proofwriter_dir: Path) -> None:
    episodes = read_depth5_mixed(proofwriter_dir / "depth5_mixed_train.json")
    train, _ = split_depth5(episodes)
    cfg = TrainConfig(mix={"full": 1, "full-small": 1, "full-easy": 1, "full-lookup": 1, "full-onehop": 1, "depth5": 1,
                             "gen": 1})
    sampler = MixSampler(cfg, Splits([], [], depth5_train=train), seed=5)
    seen = set()
    for _ in range(120):
        ep = next(sampler)
        seen.add(ep.source.split("-")[0] if ep.source.startswith("gen") else "depth5")
        theory = solve(Theory.parse(ep.facts))
        for q in ep.questions[:10]:
            assert theory.answer(parse_statement(q.text))[0] == q.answer, (ep.id, q.text)
    assert seen == {"gen", "depth5"}
    with pytest.raises(ValueError, match="unknown mix sources"):
        MixSampler(TrainConfig(mix={"nope": 1.0}), Splits([], []), seed=0)


def test_relational_and_deep_sources_draw_what_they_name(proofwriter_dir: Path) -> None:
    train, _ = split_depth5(read_depth5_mixed(proofwriter_dir / "depth5_mixed_train.json"))
    rel = MixSampler(TrainConfig(mix={"depth5-rel": 1}), Splits([], [], depth5_train=train), seed=2)
    rel_ids = {ep.id for ep in train if ep.source.startswith("Rel")}
    drawn = [next(rel) for _ in range(40)]
    assert all(ep.id in rel_ids for ep in drawn) and len({ep.id for ep in drawn}) > 30
    deep = MixSampler(TrainConfig(mix={"full-deep": 1}), Splits([], []), seed=2)
    grammars = []
    for _ in range(30):
        ep = next(deep)
        assert 12 <= len(ep.facts) <= 25 and ep.source.startswith("gen-deep-")
        grammars.append(ep.source.removeprefix("gen-deep-"))
        theory = solve(Theory.parse(ep.facts))
        for q in ep.questions[:10]:
            assert theory.answer(parse_statement(q.text))[0] == q.answer, (ep.id, q.text)
    assert sum(g.startswith("Rel") for g in grammars) > len(grammars) / 2
    with pytest.raises(ValueError, match="depth5 episodes"):
        MixSampler(TrainConfig(mix={"depth5-rel": 1}), Splits([], []), seed=0)
    attributes_only = [ep for ep in train if not ep.source.startswith("Rel")]
    with pytest.raises(ValueError, match="no relational"):
        MixSampler(TrainConfig(mix={"depth5-rel": 1}), Splits([], [], depth5_train=attributes_only), seed=0)


def test_generated_eval_sets_have_the_sizes_asked_for() -> None:
    sets = generated_sets("generated:1,4,16:3")
    assert [len(e.facts) for e in sets] == [1, 1, 1, 4, 4, 4, 16, 16, 16]
    assert [e.id for e in generated_sets("generated:1-4:5")] == [e.id for e in generated_sets("generated:1-4:5")]
    assert all(1 <= len(e.facts) <= 4 for e in generated_sets("generated:1-4:20"))
    with pytest.raises(SystemExit, match="generated:SIZES:N"):
        generated_sets("generated:1-4")


def test_eval_reads_the_hand_written_sets_and_buckets_sizes() -> None:
    episodes = read_eval_data(REPO / "training" / "evalsets" / "handwritten.json")
    assert sum(len(e.questions) for e in episodes) == 125
    assert {q.grammar for e in episodes for q in e.questions} == {"AttNoneg", "AttNeg", "RelNoneg", "RelNeg"}
    assert [size_bucket(n) for n in (1, 2, 3, 5, 64, 65)] == ["1", "2", "3-4", "5-8", "33-64", "65+"]


def test_eval_writes_one_prediction_per_question_that_matches_its_summary(tiny_gpt2: Path, tmp_path: Path) -> None:
    import json

    from training.cli import eval_cmd

    out, preds = tmp_path / "eval.json", tmp_path / "predictions.jsonl"
    result = eval_cmd(model=tiny_gpt2, data=REPO / "training" / "evalsets" / "handwritten.json", out=out,
                      limit=3, threads=1, device="cpu", recall=False, predictions=preds)
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert len(rows) == result["n_questions"] > 0
    assert sum(r["correct"] for r in rows) / len(rows) == pytest.approx(result["accuracy"], abs=1e-4)
    for r in rows:
        assert r["correct"] == (r["answer"] == r["gold"])
        assert r["answer"] == max(r["scores"], key=r["scores"].get)
        assert r["grammar"] in {"AttNoneg", "AttNeg", "RelNoneg", "RelNeg"} and r["n_facts"] >= 1
    assert len({r["theory"] for r in rows}) == result["n_theories"] == 3


def test_depth_sampling_levels_proof_depths_and_keeps_a_third_unknown() -> None:
    import collections
    import random

    from training.data.pw_gen import generate_full_episode
    from training.data.sampling import pick_questions

    rng = random.Random(3)
    episodes = [generate_full_episode(rng, i, n_sentences=rng.randint(16, 25)) for i in range(40)]
    counts: dict[str, collections.Counter[int | None]] = {"uniform": collections.Counter(),
                                                          "depth": collections.Counter()}
    for ep in episodes:
        for mode, counter in counts.items():
            picked = pick_questions(ep, 48, random.Random(ep.id), mode)
            assert len(picked) <= 48 and len({id(q) for q in picked}) == len(picked)
            assert all(q in ep.questions for q in picked)
            if mode == "depth":  # no depth takes more than an equal share of the proved questions
                depths = collections.Counter(min(q.depth, 5) for q in picked if q.depth is not None)
                assert max(depths.values()) <= -(-32 // len(depths))
            counter.update(q.depth for q in picked)

    def share(c: collections.Counter[int | None], pred: object) -> float:
        return sum(v for k, v in c.items() if pred(k)) / sum(c.values())  # type: ignore[operator]

    deep = lambda d: d is not None and d >= 3  # noqa: E731
    assert share(counts["depth"], deep) > 1.5 * share(counts["uniform"], deep)
    assert share(counts["depth"], lambda d: d == 0) < share(counts["uniform"], lambda d: d == 0)
    assert abs(share(counts["depth"], lambda d: d is None) - 1 / 3) < 0.05


def test_uniform_sampling_is_the_old_draw_and_bad_modes_are_refused() -> None:
    import random

    from training.data.pw_gen import generate_full_episode
    from training.data.sampling import pick_questions

    ep = generate_full_episode(random.Random(0), 0, n_sentences=20)
    old = list(ep.questions)
    random.Random(5).shuffle(old)
    assert pick_questions(ep, 10, random.Random(5)) == old[:10]  # resumed runs draw what they drew before
    with pytest.raises(ValueError, match="question sampling"):
        pick_questions(ep, 10, random.Random(5), "deep")


def test_config_refuses_an_unknown_question_sampling() -> None:
    with pytest.raises(ValueError, match="question_sampling"):
        TrainConfig.load(None, ["question_sampling=deep"])


def test_deep_sets_ask_rule_concluded_unknowns_as_often_as_the_real_contexts() -> None:
    import collections
    import random

    from training.data.pw_gen import generate_deep_full
    from training.error_kinds import question_kind

    rng, kinds = random.Random(0), collections.Counter[str]()
    for i in range(60):
        ep = generate_deep_full(rng, i)
        theory = Theory.parse(ep.facts)
        kinds.update(question_kind(theory, q.text, q.answer) for q in ep.questions)
    share = kinds["unknown/rule/stated"] / sum(kinds.values())
    assert 0.15 < share < 0.20  # the real depth-5 training contexts: 0.17; without near misses: 0.11


def test_generated_onehop_sets_prove_in_one_step_at_most() -> None:
    episodes = generated_sets("generated:onehop:24")
    grammars = ("AttNoneg", "AttNeg", "RelNoneg", "RelNeg")
    assert [ep.source for ep in episodes[:4]] == [f"gen-onehop-{g}" for g in grammars]
    assert all(2 <= len(ep.facts) <= 6 for ep in episodes)
    depths = [q.depth for ep in episodes for q in ep.questions]
    assert set(depths) == {0, 1, None}
    assert generated_sets("generated:onehop:24") == episodes  # a fixed seed: the same sets every run
