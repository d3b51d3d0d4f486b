"""ProofWriter's owa grammar (`Theory`, solved by pw_logic) and readers for the shared formats."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from training.data import pw_logic
from training.data.depth5 import read_depth5_mixed
from training.data.episode import Episode, Question
from training.data.pw_logic import Proof

LABELS = ("True", "False", "Unknown")

_FACT = re.compile(r"(\w+) is (\w+)\.")
_RULE = re.compile(r"If someone is (\w+(?: and \w+)*) then they are (\w+)\.")
_QUESTION = re.compile(r"(\w+) is (not )?(\w+)\.")
_MASK_FILL = re.compile(r"<extra_id_0>\s*(.*?)\s*<extra_id_1>")


@dataclass(frozen=True)
class Rule:
    conditions: tuple[str, ...]
    conclusion: str
    text: str


@dataclass(frozen=True)
class Theory:
    facts: dict[tuple[str, str], str]  # (entity, attribute) -> sentence
    rules: tuple[Rule, ...]

    @classmethod
    def parse(cls, sentences: Iterable[str]) -> Theory:
        facts: dict[tuple[str, str], str] = {}
        rules: list[Rule] = []
        for s in sentences:
            if m := _RULE.fullmatch(s):
                rules.append(Rule(tuple(m.group(1).split(" and ")), m.group(2), s))
            elif m := _FACT.fullmatch(s):
                facts[(m.group(1), m.group(2))] = s
            else:
                raise ValueError(f"not a ProofWriter fact or rule: {s!r}")
        return cls(facts, tuple(rules))

    def entities(self) -> list[str]:
        return sorted({e for e, _ in self.facts})


def closure(theory: Theory) -> dict[tuple[str, str], Proof]:
    """Every provable atom with its shallowest proof (open world; this grammar has no negation).

    The owa grammar is a fragment of the full language, so pw_logic's solver does the work.
    """
    full = pw_logic.Theory(
        tuple((pw_logic.Literal(e, pw_logic.IS, a), s) for (e, a), s in theory.facts.items()),
        tuple(pw_logic.Rule(tuple(pw_logic.Literal(pw_logic.VAR, pw_logic.IS, c) for c in r.conditions),
                            pw_logic.Literal(pw_logic.VAR, pw_logic.IS, r.conclusion), r.text)
              for r in theory.rules),
    )
    return {(lit.subject, lit.object): p for lit, p in pw_logic.solve(full).proofs.items()}


def parse_question(text: str) -> tuple[str, str, bool]:
    m = _QUESTION.fullmatch(text)
    if not m:
        raise ValueError(f"not a ProofWriter question: {text!r}")
    return m.group(1), m.group(3), m.group(2) is not None


def answer(proven: dict[tuple[str, str], Proof], question: str) -> tuple[str, Proof | None]:
    """OWA label: a provable atom is True (False when negated); anything else is Unknown."""
    entity, attr, negated = parse_question(question)
    proof = proven.get((entity, attr))
    if proof is None:
        return "Unknown", None
    return ("False" if negated else "True"), proof


def label(value: object) -> str:
    if value is True or value == "True" or value == "true":
        return "True"
    if value is False or value == "False" or value == "false":
        return "False"
    if value == "Unknown":
        return "Unknown"
    raise ValueError(f"not a ProofWriter label: {value!r}")


def unmask(masked: str, fill: str) -> str:
    """owa_train splits each sentence T5-style; every <extra_id_0> takes the fill word."""
    m = _MASK_FILL.search(fill)
    if not m:
        raise ValueError(f"bad fill {fill!r}")
    return masked.replace("<extra_id_0>", m.group(1))


def _relevant_for_unknown(theory: Theory, q: dict, text: str) -> tuple[str, ...]:
    """Unknowns have no proof: keep the rules named in the failure trace and the subject's facts."""
    entity, _, _ = parse_question(text)
    ids = set(re.findall(r"rule\d+", str(q.get("proofs", ""))))
    return tuple(ids) + tuple(s for (e, _), s in theory.facts.items() if e == entity)


def _records(path: str | Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def read_natlang(path: str | Path) -> Iterator[Episode]:
    """owa_dev_natlang format: clean triples/rules, QDep and proofs."""
    for d in _records(path):
        by_id = {k: v["text"] for k, v in {**d["triples"], **d["rules"]}.items()}
        facts = tuple(by_id.values())
        theory = Theory.parse(facts)
        questions = []
        for q in d["questions"].values():
            text = q["question"]
            if "proofsWithIntermediates" in q:
                rep = q["proofsWithIntermediates"][0]["representation"]
                ids = re.findall(r"(?:triple|rule)\d+", rep)
            else:
                ids = list(_relevant_for_unknown(theory, q, text))
            proof = tuple(dict.fromkeys(by_id.get(i, i) for i in ids))
            questions.append(Question(text, label(q["answer"]), int(q["QDep"]), proof))
        yield Episode(str(d["id"]), facts, tuple(questions), "owa_dev")


def read_owa_train(path: str | Path) -> Iterator[Episode]:
    """owa_train format: T5-masked facts, no depths; depths and proofs come from the solver."""
    for d in _records(path):
        facts = tuple(dict.fromkeys(unmask(m, fill) for m, fill in d["facts"]))
        theory = Theory.parse(facts)
        proven = closure(theory)
        questions = []
        for text, ans in d["qa_pairs"]:
            _, proof = answer(proven, text)
            if proof is None:
                ent = parse_question(text)[0]
                support = tuple(s for (e, _), s in theory.facts.items() if e == ent)
                questions.append(Question(text, label(ans), None, support))
            else:
                questions.append(Question(text, label(ans), proof.depth, tuple(sorted(proof.support))))
        yield Episode(str(d.get("guid", "")), facts, tuple(questions), "owa_train")


def read_proofwriter(path: str | Path) -> list[Episode]:
    """Any shared format: a JSON list is depth5_mixed's; JSON lines are told apart by the first record's keys."""
    with open(path, encoding="utf-8") as f:
        head = f.read(4096).lstrip()
    if head.startswith("["):
        return read_depth5_mixed(path)
    with open(path, encoding="utf-8") as f:
        first = json.loads(next(line for line in f if line.strip()))
    reader = read_natlang if "triples" in first else read_owa_train
    return list(reader(path))
