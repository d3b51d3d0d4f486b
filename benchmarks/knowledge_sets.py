"""Solver-labelled knowledge sets of a given size for the scaling rows (training's full-language generator)."""

from __future__ import annotations

import random

from training.data.episode import Episode, Question
from training.data.pw_gen import generate_full_episode
from training.data.pw_logic import Theory, solve

GENERATOR_MAX = 64  # generate_full_episode draws 1-64 sentences


def _entities(ep: Episode) -> set[str]:
    return {e.lower() for e in Theory.parse(ep.facts).entities()}


def union_of_parts(parts: list[Episode], ident: str) -> Episode:
    """One knowledge set from several generated ones, its questions labelled again by the solver on the union.

    The parts share no entity (the caller draws them so), so no fact of one part is about another part's
    entities; a generic rule ("If something is red then it is big") does range over every entity, though, so
    instead of assuming each part's labels survive, every question is re-answered on the union's closure (the
    solver agrees with every label of ProofWriter's own files). A union with a contradiction raises ValueError.
    """
    sentences = tuple(s for p in parts for s in p.facts)
    closure = solve(Theory.parse(sentences))
    if closure.contradictions:
        raise ValueError(f"the union has contradictions: {closure.contradictions[:3]}")
    questions = []
    for q in (q for p in parts for q in p.questions):
        answer, proof = closure.answer(q.text)
        questions.append(Question(q.text, answer, proof.depth if proof else None, None, q.grammar))
    return Episode(ident, sentences, tuple(questions), "gen-full-union")


def knowledge_set(rng: random.Random, index: int, n_sentences: int) -> Episode:
    """A generated set of exactly n_sentences. Past the generator's 64, disjoint sets of at most 64 are drawn
    (a part sharing an entity with an earlier one is drawn again) and joined by union_of_parts."""
    if n_sentences <= GENERATOR_MAX:
        return generate_full_episode(rng, index, n_sentences=n_sentences)
    for _ in range(20):
        parts: list[Episode] = []
        seen: set[str] = set()
        left = n_sentences
        while left > 0:
            size = min(GENERATOR_MAX, left)
            for _ in range(200):
                part = generate_full_episode(rng, index, n_sentences=size)
                names = _entities(part)
                if not names & seen:
                    break
            else:
                raise RuntimeError(f"no part of {size} sentences with new entities after 200 draws")
            seen |= names
            parts.append(part)
            left -= size
        try:
            return union_of_parts(parts, f"full-union-{index}-{n_sentences}")
        except ValueError:
            continue  # a contradiction across parts (rare): draw the parts again
    raise RuntimeError(f"no contradiction-free union of {n_sentences} sentences in 20 tries")
