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
