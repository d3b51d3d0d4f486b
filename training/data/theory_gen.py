"""Unlimited ProofWriter-style theories in the owa grammar, labelled by the forward-chaining solver."""

from __future__ import annotations

import random
from collections.abc import Iterator

from training.data.episode import Episode, Question
from training.data.proofwriter import Theory, closure

NAMES = ("Anne", "Bob", "Charlie", "Dave", "Erin", "Fiona", "Gary", "Harry", "Alan", "Eric", "Fred")
ATTRIBUTES = ("big", "blue", "cold", "green", "kind", "nice", "red", "rough", "round", "young")
# owa_dev: rules with 1/2/3 conditions in about 1:4.4:5.9
_N_CONDITIONS = (1, 2, 3)
_CONDITION_WEIGHTS = (0.09, 0.39, 0.52)


def _rule_text(conditions: list[str], conclusion: str) -> str:
    return f"If someone is {' and '.join(conditions)} then they are {conclusion}."


def generate_theory(rng: random.Random, min_depth: int = 3, max_tries: int = 200) -> Theory:
    """Facts about 2-4 people and 5-7 rules; rules are built to fire so proofs reach min_depth."""
    for _ in range(max_tries):
        names = rng.sample(NAMES, rng.choice((2, 3, 3, 4, 4, 4)))
        n_facts = rng.randint(8, 12)
        facts: set[tuple[str, str]] = set()
        while len(facts) < n_facts:
            facts.add((rng.choice(names), rng.choice(ATTRIBUTES)))
        fact_text = {f: f"{f[0]} is {f[1]}." for f in facts}
        rules: list[str] = []
        for _ in range(rng.randint(5, 7)):
            k = rng.choices(_N_CONDITIONS, _CONDITION_WEIGHTS)[0]
            theory = Theory.parse([*fact_text.values(), *rules])
            proven = closure(theory)
            if rng.random() < 0.75:
                # chain off something a person already has, so the rule fires and depth grows
                who = rng.choice(names)
                have = sorted(a for (e, a) in proven if e == who)
                if len(have) >= k:
                    conds = rng.sample(have, k)
                    missing = [a for a in ATTRIBUTES if (who, a) not in proven]
                    concl = rng.choice(missing) if missing else rng.choice(ATTRIBUTES)
                    rules.append(_rule_text(conds, concl))
                    continue
            conds = rng.sample(ATTRIBUTES, k)
            concl = rng.choice([a for a in ATTRIBUTES if a not in conds])
            rules.append(_rule_text(conds, concl))
        theory = Theory.parse([*fact_text.values(), *dict.fromkeys(rules)])
        proven = closure(theory)
        if max(p.depth for p in proven.values()) >= min_depth:
            return theory
    raise RuntimeError("could not generate a deep enough theory")


def questions_for(theory: Theory, rng: random.Random) -> list[Question]:
    """Every provable atom in both wordings, plus as many Unknowns (half of them rule conclusions)."""
    proven = closure(theory)
    qs: list[Question] = []
    for (e, a), proof in sorted(proven.items()):
        support = tuple(sorted(proof.support))
        qs.append(Question(f"{e} is {a}.", "True", proof.depth, support))
        qs.append(Question(f"{e} is not {a}.", "False", proof.depth, support))
    entities = theory.entities()
    conclusions = sorted({r.conclusion for r in theory.rules})
    unknown = [(e, a) for e in entities for a in ATTRIBUTES if (e, a) not in proven]
    hard = [x for x in unknown if x[1] in conclusions]
    rng.shuffle(hard)
    rng.shuffle(unknown)
    picked = list(dict.fromkeys(hard[: len(qs) // 4] + unknown))[: len(qs) // 2]
    for e, a in picked:
        support = tuple(s for (fe, _), s in theory.facts.items() if fe == e)
        support += tuple(r.text for r in theory.rules if r.conclusion == a)
        qs.append(Question(f"{e} is {a}.", "Unknown", None, support))
        qs.append(Question(f"{e} is not {a}.", "Unknown", None, support))
    return qs


def generate_episode(rng: random.Random, index: int = 0) -> Episode:
    theory = generate_theory(rng)
    facts = [*theory.facts.values(), *(r.text for r in theory.rules)]
    rng.shuffle(facts)
    return Episode(f"gen-{index}", tuple(facts), tuple(questions_for(theory, rng)), "gen")


def generate_easy_episode(rng: random.Random, index: int = 0) -> Episode:
    """Curriculum: 1-3 people, 2-6 facts, at most two one-condition rules (depth <= 2).

    Small knowledge sets make the lookup (depth 0) and one-hop signal easy to find, which is
    what gets a model from scratch off the answer-from-wording plateau.
    """
    names = rng.sample(NAMES, rng.randint(1, 3))
    facts: set[tuple[str, str]] = set()
    for _ in range(rng.randint(2, 6)):
        facts.add((rng.choice(names), rng.choice(ATTRIBUTES)))
    sentences = [f"{e} is {a}." for e, a in sorted(facts)]
    for _ in range(rng.randint(0, 2)):
        cond = rng.choice(sorted(facts))[1]
        concl = rng.choice([a for a in ATTRIBUTES if a != cond])
        sentences.append(_rule_text([cond], concl))
    theory = Theory.parse(dict.fromkeys(sentences))
    rng.shuffle(sentences)
    return Episode(f"easy-{index}", tuple(dict.fromkeys(sentences)), tuple(questions_for(theory, rng)), "gen-easy")


def generate_lookup_episode(rng: random.Random, index: int = 0) -> Episode:
    """Curriculum for reading the context: 1-2 people, 1-4 facts, no rules (every answer is depth 0).

    Each stated fact is asked in both wordings, and as many Unknowns ask a stated person about another
    attribute: the answer turns on whether that exact statement is in the knowledge, nothing else.
    """
    names = rng.sample(NAMES, rng.randint(1, 2))
    facts = {(rng.choice(names), rng.choice(ATTRIBUTES)) for _ in range(rng.randint(1, 4))}
    sentences = [f"{e} is {a}." for e, a in sorted(facts)]
    theory = Theory.parse(sentences)
    rng.shuffle(sentences)
    return Episode(f"lookup-{index}", tuple(sentences), tuple(questions_for(theory, rng)), "gen-lookup")


def iter_episodes(seed: int) -> Iterator[Episode]:
    rng = random.Random(seed)
    i = 0
    while True:
        yield generate_episode(rng, i)
        i += 1
