"""Reader for the depth5_mixed format (Logic-LM's ProofWriter sample): one Episode per distinct context."""

from __future__ import annotations

import json
import re
from pathlib import Path

from training.data.episode import Episode, Question
from training.data.pw_logic import Closure, Theory, parse_statement, solve

PREFIX = "Based on the above information, is the following statement true, false, or unknown? "
LETTERS = {"A": "True", "B": "False", "C": "Unknown"}
GRAMMARS = ("AttNoneg", "AttNeg", "RelNoneg", "RelNeg")
_SENTENCE_END = re.compile(r"(?<=\.)\s+")


def split_sentences(context: str) -> tuple[str, ...]:
    return tuple(s for s in _SENTENCE_END.split(context.strip()) if s)


def grammar_of(qid: str) -> str:
    """`ProofWriter_RelNeg-OWA-D5-81_Q11` -> `RelNeg`."""
    return qid.removeprefix("ProofWriter_").split("-", 1)[0]


def statement_of(question: str) -> str:
    if not question.startswith(PREFIX):
        raise ValueError(f"question without the fixed prefix: {question!r}")
    return question[len(PREFIX):].strip()


def labelled_question(closure: Closure, text: str, answer: str, grammar: str | None = None) -> Question:
    """The data's label, with the solver's depth (None for Unknown) and support (the proof's sentences,
    or for an Unknown the sentences about its subject and the rules that could conclude it)."""
    lit = parse_statement(text)
    _, proof = closure.answer(lit)
    order = {s: i for i, s in enumerate(closure.theory.sentences())}
    if proof is None:
        return Question(text, answer, None, closure.related(lit), grammar)
    support = tuple(sorted(proof.support, key=lambda s: order.get(s, len(order))))
    return Question(text, answer, proof.depth, support, grammar)


def read_depth5_mixed(path: str | Path) -> list[Episode]:
    """Questions grouped by identical context, in file order; Episode.source is the grammar."""
    with open(path, encoding="utf-8") as f:
        items = json.load(f)
    groups: dict[str, list[dict]] = {}
    for item in items:
        groups.setdefault(item["context"], []).append(item)
    episodes = []
    for context, group in groups.items():
        facts = split_sentences(context)
        closure = solve(Theory.parse(facts))
        grammar = grammar_of(group[0]["id"])
        questions = tuple(
            labelled_question(closure, statement_of(it["question"]), LETTERS[it["answer"]], grammar_of(it["id"]))
            for it in group
        )
        ep_id = re.sub(r"_Q\d+$", "", group[0]["id"])
        episodes.append(Episode(ep_id, facts, questions, grammar))
    return episodes
