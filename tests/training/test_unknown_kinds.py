"""The generator's Unknown questions lean toward the hard kind the real depth-5 questions have."""

import random

from training.data.pw_gen import generate_full_episode
from training.data.pw_logic import Theory
from training.data.unknown_kinds import shares, unknown_kind


def test_kinds_of_unknown() -> None:
    theory = Theory.parse(["Bob is big.", "If someone is big and kind then they are rough.", "Anne is red."])
    assert unknown_kind(theory, "Bob is rough.") == "rule"  # concluded by a rule that does not fire
    assert unknown_kind(theory, "Bob is not rough.") == "rule"
    assert unknown_kind(theory, "Anne is big.") == "other"
    assert unknown_kind(theory, "Charlie is big.") == "absent"


def test_generated_unknowns_are_mostly_about_the_knowledge_own_entities() -> None:
    rng = random.Random(7)
    got = shares(generate_full_episode(rng, i, n_sentences=rng.randint(12, 30)) for i in range(60))
    assert got["n_unknown"] > 500
    # real depth5_mixed_train: absent 0.0, rule 0.53 (results/data/unknown_kinds.json); the generator keeps
    # some absent-entity Unknowns (hand-written sets ask about them) but most are about present entities
    assert 0.05 <= got["absent"] <= 0.25, got
    assert got["rule"] >= 0.33, got


def test_error_kinds_count_each_answer_against_its_kind() -> None:
    import pytest

    from training.cli import generated_sets
    from training.error_kinds import by_kind, question_kind

    theory = Theory.parse(["Bob is big.", "If someone is big and kind then they are rough.", "Anne is red."])
    assert question_kind(theory, "Bob is rough.", "Unknown") == "unknown/rule/stated"
    assert question_kind(theory, "Charlie is big.", "Unknown") == "unknown/absent/unstated"
    assert question_kind(theory, "Bob is big.", "True") == "provable"
    episodes = generated_sets("generated:1-4:12")
    rows = [{"theory": ep.id, "question": q.text, "gold": q.answer, "answer": q.answer, "n_facts": len(ep.facts)}
            for ep in episodes for q in ep.questions]
    unknown = next(r for r in rows if r["gold"] == "Unknown")
    unknown["answer"] = "True"
    both = by_kind(rows, episodes)
    got = both["by_kind"]
    assert sum(k["n"] for k in got.values()) == len(rows)
    assert sum(k["n"] for k in both["by_proof"].values()) == got["provable"]["n"]
    kind = question_kind(Theory.parse(next(e for e in episodes if e.id == unknown["theory"]).facts),
                         unknown["question"], "Unknown")
    assert got[kind]["wrong_answers"] == {"True": 1} and got[kind]["accuracy"] < 1
    assert all(v["accuracy"] == 1 for k, v in got.items() if k != kind)
    with pytest.raises(ValueError, match="not labelled"):
        by_kind([{**rows[0], "gold": "Unknown" if rows[0]["gold"] != "Unknown" else "True"}], episodes)
    with pytest.raises(ValueError, match="full-theory predictions only"):
        by_kind([{**rows[0], "n_facts": 0}], episodes)
    with pytest.raises(ValueError, match="does not hold"):
        by_kind([{**rows[0], "theory": "nope"}], episodes)


def test_proof_kinds_name_the_negations_a_proof_goes_through() -> None:
    from training.data.pw_logic import solve
    from training.error_kinds import proof_kind

    closure = solve(Theory.parse(["The cat is not nice.", "If someone is not nice then they eat the lion.",
                                  "Anne is red.", "Red things are not big.", "If someone is red then they are kind.",
                                  "If someone eats the lion then they are hungry."]))
    assert proof_kind(closure, "The cat is nice.") == "stated fact"
    assert proof_kind(closure, "The cat eats the lion.") == "negated condition"
    assert proof_kind(closure, "The cat is hungry.") == "negated condition"  # via a rule that has one
    assert proof_kind(closure, "Anne is big.") == "negated conclusion"
    assert proof_kind(closure, "Anne is not kind.") == "positive rules"
    assert proof_kind(closure, "Anne is hungry.") is None
