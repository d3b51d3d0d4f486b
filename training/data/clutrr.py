"""CLUTRR kinship: the symbolic-file reader, a relation composition table and a k-hop chain generator."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from training.data.episode import Episode, Question

# ---------------------------------------------------------------------------------------------
# Relations. "A is the <word> of B": every word names a kin type and the gender of A (the head).
# ---------------------------------------------------------------------------------------------

# kin types: parent, child, sibling, spouse, grandparent, grandchild, uncle/aunt ("pibling"),
# nephew/niece ("nibling"), parent-in-law, child-in-law
P, C, S, SP, GP, GC, U, N, PL, CL = "P", "C", "S", "SP", "GP", "GC", "U", "N", "PL", "CL"
MALE, FEMALE = 0, 1

WORDS: dict[str, tuple[str, str]] = {  # kin type -> (male word, female word)
    P: ("father", "mother"),
    C: ("son", "daughter"),
    S: ("brother", "sister"),
    SP: ("husband", "wife"),
    GP: ("grandfather", "grandmother"),
    GC: ("grandson", "granddaughter"),
    U: ("uncle", "aunt"),
    N: ("nephew", "niece"),
    PL: ("father-in-law", "mother-in-law"),
    CL: ("son-in-law", "daughter-in-law"),
}
KIN: dict[str, tuple[str, int]] = {w: (t, g) for t, pair in WORDS.items() for g, w in enumerate(pair)}
RELATIONS: tuple[str, ...] = tuple(w for pair in WORDS.values() for w in pair)
# the relations the facts of clutrr_2hop_symbolic.jsonl use (its answers add nephew/niece and the in-laws)
FACT_RELATIONS: tuple[str, ...] = tuple(WORDS[t][g] for t in (P, C, S, SP, GP, GC, U) for g in (MALE, FEMALE))
# the answers of clutrr_2hop_symbolic.jsonl: every relation but husband and wife
FILE_ANSWERS: tuple[str, ...] = tuple(r for r in RELATIONS if KIN[r][0] != SP)

# The composition table on kin types: A t1 B and B t2 C  =>  A TABLE[t1, t2] C (A, B, C distinct).
# The family model: couples are one man and one woman, married for life; a child's two parents are a
# married couple; siblings share both parents; uncle/aunt = sibling of a parent (by blood), nephew/niece
# = child of a sibling. Every entry except those in CONVENTIONS is entailed by that model. Pairs that
# leave the vocabulary (cousins, great-*, siblings-in-law) or stay ambiguous in it are absent.
TABLE: dict[tuple[str, str], str] = {
    (P, P): GP,
    (P, C): SP,  # the child's two parents are a couple
    (P, S): P,
    (P, SP): PL,
    (P, U): GP,
    (P, N): S,  # convention (inverse of U∘C)
    (P, GC): C,  # convention (inverse of GP∘C)
    (C, P): S,
    (C, C): GC,
    (C, S): N,
    (C, SP): C,
    (C, CL): GC,
    (S, P): U,
    (S, C): C,
    (S, S): S,
    (S, GC): GC,
    (S, N): N,
    (SP, P): P,
    (SP, C): CL,
    (SP, GP): GP,
    (SP, PL): PL,
    (SP, CL): C,  # A is the spouse of C's child
    (GP, S): GP,
    (GP, C): P,  # convention (CLUTRR label)
    (GC, SP): GC,
    (U, C): S,  # convention (CLUTRR label)
    (U, S): U,
    (N, C): GC,
    (PL, P): GP,
    (PL, SP): P,
    (PL, CL): SP,
    (CL, SP): CL,
}
# Entries the model leaves ambiguous between a blood relation and an in-law (e.g. the uncle of C's son
# may be C's brother or brother-in-law); CLUTRR's labels pick the blood relation, and so do we.
CONVENTIONS: frozenset[tuple[str, str]] = frozenset({(U, C), (GP, C), (P, N), (P, GC)})


def compose(r1: str, r2: str) -> str | None:
    """A is the r1 of B and B is the r2 of C => A is the compose(r1, r2) of C; None if not nameable."""
    try:
        t1, gender = KIN[r1]
        t2, _ = KIN[r2]
    except KeyError as e:
        raise ValueError(f"unknown kinship relation {e.args[0]!r}") from None
    t = TABLE.get((t1, t2))
    return None if t is None else WORDS[t][gender]


def compose_chain(relations: Sequence[str]) -> str | None:
    """Fold compose over A r1 B, B r2 C, ...; None as soon as a step does not compose."""
    if not relations:
        raise ValueError("empty chain")
    if relations[0] not in KIN:
        raise ValueError(f"unknown kinship relation {relations[0]!r}")
    acc = relations[0]
    for r in relations[1:]:
        step = compose(acc, r)
        if step is None:
            return None
        acc = step
    return acc


# ---------------------------------------------------------------------------------------------
# Sentences
# ---------------------------------------------------------------------------------------------

_FACT = re.compile(r"(\S+) is the ([a-z-]+) of (\S+)\.")
_QUESTION = re.compile(r"How is (\S+) related to (\S+)\?")


def fact_sentence(head: str, relation: str, tail: str) -> str:
    return f"{head} is the {relation} of {tail}."


def question_sentence(head: str, tail: str) -> str:
    return f"How is {head} related to {tail}?"


def parse_fact(sentence: str) -> tuple[str, str, str]:
    """"K is the uncle of C." -> ("K", "uncle", "C")."""
    m = _FACT.fullmatch(sentence)
    if not m:
        raise ValueError(f"not a kinship fact: {sentence!r}")
    return m.group(1), m.group(2), m.group(3)


def parse_question(text: str) -> tuple[str, str]:
    """"How is K related to Z?" -> ("K", "Z")."""
    m = _QUESTION.fullmatch(text)
    if not m:
        raise ValueError(f"not a kinship question: {text!r}")
    return m.group(1), m.group(2)


def chain_of(facts: Iterable[str], question: str) -> tuple[tuple[str, ...], str] | None:
    """The facts along a chain from the question's first person to its second one, and their composition.

    Facts are read as directed edges "head is the r of tail"; None when no chain composes.
    """
    edges: dict[str, list[tuple[str, str, str]]] = {}
    for sentence in facts:
        h, r, t = parse_fact(sentence)
        edges.setdefault(h, []).append((r, t, sentence))
    start, goal = parse_question(question)
    used: list[str] = []

    def walk(node: str, acc: str | None, seen: frozenset[str]) -> str | None:
        for r, nxt, sentence in edges.get(node, ()):
            if nxt in seen:
                continue
            rel = r if acc is None else compose(acc, r)
            if rel is None:
                continue
            used.append(sentence)
            if nxt == goal:
                return rel
            found = walk(nxt, rel, seen | {nxt})
            if found is not None:
                return found
            used.pop()
        return None

    answer = walk(start, None, frozenset({start}))
    return None if answer is None else (tuple(used), answer)


def answer_from_facts(facts: Iterable[str], question: str) -> str | None:
    """Compose the facts along the chain the question asks about (None if there is none)."""
    found = chain_of(facts, question)
    return None if found is None else found[1]


# ---------------------------------------------------------------------------------------------
# Reader for clutrr_2hop_symbolic.jsonl
# ---------------------------------------------------------------------------------------------

# The stories' letters stand for the proofs' "person n": letter i of this string is person i + 1
# (checked on every line of the shared file).
PROOF_LETTERS = "ABCHJKLMNOPQRSTUVXYZ"
_PROOF_STEP = re.compile(r"person (\d+) is (?:a|an|the) ([a-z-]+) (?:of|to) person (\d+)")


def _proof_triples(proof: str) -> set[tuple[str, str, str]]:
    out = set()
    for h, r, t in _PROOF_STEP.findall(proof):
        hi, ti = int(h) - 1, int(t) - 1
        if 0 <= hi < len(PROOF_LETTERS) and 0 <= ti < len(PROOF_LETTERS):
            out.add((PROOF_LETTERS[hi], r, PROOF_LETTERS[ti]))
    return out


def _orient(head: str, rel: str, tail: str, triples: set[tuple[str, str, str]]) -> tuple[str, str]:
    if (head, rel, tail) not in triples and (tail, rel, head) in triples:
        return tail, head
    return head, tail


def read_clutrr(path: str | Path, *, orient_by_proof: bool = True) -> list[Episode]:
    """Read a CLUTRR symbolic jsonl file: ["K C", "uncle"] -> "K is the uncle of C.".

    In the shared file about a third of the stories state a fact or the question the wrong way round
    (e.g. ["C O", "son"] where the proof says O is the son of C, or a question "How is H related to R?"
    whose answer is R's relation to H); the literal reading then does not entail the label. With
    ``orient_by_proof`` (default) each fact and question is turned the way the story's own proof
    states it, so that composing the facts gives the label; otherwise the pairs are read literally.
    Each question's proof_facts are the facts in chain order when they compose to its answer.
    """
    episodes = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            proofs = [p for p in row.get("proofs") or [] if isinstance(p, str)]
            triples = set().union(*map(_proof_triples, proofs)) if orient_by_proof else set()
            facts = []
            for pair, rel in row["facts"]:
                h, t = pair.split()
                h, t = _orient(h, rel, t, triples)
                facts.append(fact_sentence(h, rel, t))
            questions = []
            for _text, pair, answer in row["questions"]:
                h, t = pair.split()
                h, t = _orient(h, answer, t, triples)
                text = question_sentence(h, t)
                chain = chain_of(facts, text)
                proof = chain[0] if chain is not None and chain[1] == answer else None
                questions.append(Question(text, answer, depth=len(facts), proof_facts=proof))
            episodes.append(
                Episode(str(row.get("guid") or f"clutrr-{lineno}"), tuple(facts), tuple(questions), "clutrr")
            )
    return episodes


# ---------------------------------------------------------------------------------------------
# Generator: random families, k-hop paths through them, labels by the composition table
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def name_pools() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(male, female) real first names from faker's English provider, without names used for both."""
    from faker.providers.person.en import Provider

    male, female = set(Provider.first_names_male), set(Provider.first_names_female)

    def ok(name: str) -> bool:
        return name.isascii() and name.isalpha() and len(name) > 1 and name.lower() not in KIN

    return tuple(sorted(n for n in male - female if ok(n))), tuple(sorted(n for n in female - male if ok(n)))


@dataclass
class _Person:
    gender: int
    parents: tuple[int, int] | None = None
    spouse: int | None = None
    children: list[int] = field(default_factory=list)


def _family(rng: random.Random, generations: int) -> list[_Person]:
    """A random family tree in the table's model: blood descendants of one couple plus their spouses."""
    people = [_Person(MALE, spouse=1), _Person(FEMALE, spouse=0)]
    couples = [(0, 1, 0)]
    while couples:
        a, b, gen = couples.pop(0)
        for _ in range(rng.randint(1, 3)):
            child = len(people)
            people.append(_Person(rng.randrange(2), parents=(a, b)))
            people[a].children.append(child)
            people[b].children.append(child)
            if gen + 2 < generations and rng.random() < 0.8:
                spouse = len(people)
                people.append(_Person(1 - people[child].gender, spouse=child))
                people[child].spouse = spouse
                couples.append((child, spouse, gen + 1))
    return people


def _kin_maps(people: list[_Person]) -> list[dict[int, str]]:
    """kin[x][y] = t when x is the t of y, for every pair the vocabulary can name."""
    kin: list[dict[int, str]] = [{} for _ in people]

    def put(x: int, y: int, t: str) -> None:
        if kin[x].setdefault(y, t) != t:
            raise AssertionError(f"two relations between {x} and {y}")  # impossible in this model

    def siblings(x: int) -> list[int]:
        par = people[x].parents
        return [] if par is None else [c for c in people[par[0]].children if c != x]

    for x, person in enumerate(people):
        parents = person.parents or ()
        for p in parents:
            put(x, p, C)
            for g in people[p].parents or ():
                put(x, g, GC)
            for s in siblings(p):
                put(x, s, N)
        for c in person.children:
            put(x, c, P)
            for g in people[c].children:
                put(x, g, GP)
            in_law = people[c].spouse
            if in_law is not None:
                put(x, in_law, PL)
        for s in siblings(x):
            put(x, s, S)
            for c in people[s].children:
                put(x, c, U)
        if person.spouse is not None:
            put(x, person.spouse, SP)
            for p in people[person.spouse].parents or ():
                put(x, p, CL)
    return kin


class KinshipComposer:
    """Generates k-hop kinship chains whose answers are given by the composition table.

    Each story is a path through a random family (so its facts are consistent), and every prefix of
    the path composes by the table to the true relation in that family. Facts use ``fact_relations``
    (default: those of the shared file); answers are limited to ``answer_relations`` (default: any;
    FILE_ANSWERS gives the file's label set, which has no husband/wife).
    """

    def __init__(
        self,
        fact_relations: Iterable[str] = FACT_RELATIONS,
        *,
        answer_relations: Iterable[str] = RELATIONS,
        generations: int = 5,
        shuffle_facts: bool = True,
        search_budget: int = 20_000,
    ) -> None:
        self.fact_relations = frozenset(fact_relations)
        self.answer_relations = frozenset(answer_relations)
        unknown = (self.fact_relations | self.answer_relations) - set(KIN)
        if unknown:
            raise ValueError(f"unknown relations {sorted(unknown)}")
        self.generations = generations
        self.shuffle_facts = shuffle_facts
        self.search_budget = search_budget

    compose = staticmethod(compose)

    def generate_chain(self, k: int, rng: random.Random) -> Episode:
        """A story of k facts "A is the R of B." along a chain and the question "How is A related to Z?"."""
        if k < 1:
            raise ValueError("k must be at least 1")
        for _ in range(200):
            people = _family(rng, self.generations)
            kin = _kin_maps(people)
            found = self._path(people, kin, rng.randrange(len(people)), k, rng)
            if found is not None:
                return self._episode(people, kin, found[0], found[1], rng)
        raise RuntimeError(f"could not find a {k}-hop kinship chain; try fewer hops or more generations")

    def iter_chains(self, n: int | None, k_range: Iterable[int] = range(2, 11), seed: int = 0) -> Iterator[Episode]:
        """n chains (endless if n is None) with hop counts drawn uniformly from k_range, e.g. range(2, 11)."""
        ks = list(k_range)
        if not ks:
            raise ValueError("empty k_range")
        rng = random.Random(seed)
        for _ in itertools.count() if n is None else range(n):
            yield self.generate_chain(rng.choice(ks), rng)

    def _path(
        self, people: list[_Person], kin: list[dict[int, str]], start: int, k: int, rng: random.Random
    ) -> tuple[list[int], str] | None:
        budget = self.search_budget
        path = [start]

        def extend(acc: str | None) -> str | None:
            nonlocal budget
            if len(path) == k + 1:
                ok = acc is not None and WORDS[acc][people[start].gender] in self.answer_relations
                return acc if ok else None
            x = path[-1]
            gender = people[x].gender
            options = [
                (y, t) for y, t in kin[x].items() if y not in path and WORDS[t][gender] in self.fact_relations
            ]
            rng.shuffle(options)
            for y, t in options:
                budget -= 1
                if budget < 0:
                    return None
                rel = t if acc is None else TABLE.get((acc, t))
                if rel is None or kin[start].get(y) != rel:
                    continue
                path.append(y)
                answer = extend(rel)
                if answer is not None:
                    return answer
                path.pop()
            return None

        answer = extend(None)
        return None if answer is None else (path, answer)

    def _episode(
        self, people: list[_Person], kin: list[dict[int, str]], path: list[int], answer: str, rng: random.Random
    ) -> Episode:
        male, female = name_pools()
        genders = [people[x].gender for x in path]
        males = iter(rng.sample(male, genders.count(MALE)))
        females = iter(rng.sample(female, genders.count(FEMALE)))
        names = [next(females) if g == FEMALE else next(males) for g in genders]
        kin_words = [WORDS[kin[a][b]][g] for a, b, g in zip(path[:-1], path[1:], genders[:-1], strict=True)]
        chain = tuple(fact_sentence(names[i], kin_words[i], names[i + 1]) for i in range(len(kin_words)))
        facts = list(chain)
        if self.shuffle_facts:
            rng.shuffle(facts)
        question = Question(
            question_sentence(names[0], names[-1]), WORDS[answer][genders[0]], depth=len(chain), proof_facts=chain
        )
        digest = hashlib.sha1("\n".join((*facts, question.text, question.answer)).encode()).hexdigest()[:16]
        return Episode(f"clutrr-gen-k{len(chain)}-{digest}", tuple(facts), (question,), "clutrr-gen")


_DEFAULT = KinshipComposer()


def generate_chain(k: int, rng: random.Random) -> Episode:
    """A k-hop chain episode (source "clutrr-gen") from the default composer."""
    return _DEFAULT.generate_chain(k, rng)


def iter_chains(n: int | None, k_range: Iterable[int] = range(2, 11), seed: int = 0) -> Iterator[Episode]:
    """n generated chains (endless if None), k drawn uniformly from k_range, deterministic for a seed."""
    return _DEFAULT.iter_chains(n, k_range, seed)
