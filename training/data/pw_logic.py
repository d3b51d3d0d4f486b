"""The full ProofWriter OWA language: sentence parser, renderer and a forward-chaining solver with negation."""

from __future__ import annotations

import functools
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

LABELS = ("True", "False", "Unknown")
IS = "is"  # the relation of an attribute literal: ("the cow", "is", "red")
VAR = "?x"  # the one variable of a rule (someone/something, they/it)

# Words the grammar itself uses: never an attribute, a noun or a verb.
RESERVED = frozenset((
    "a", "all", "an", "and", "are", "do", "does", "if", "is", "it", "not", "people", "someone", "something",
    "the", "then", "they", "things",
))

_NAME = r"[A-Z][a-z]+"
_NOUN = r"[a-z]+(?: [a-z]+)*?"
_ENTITY = rf"(?:[Tt]he {_NOUN}|{_NAME})"
_WORD = r"[a-z]+"
_REL_FACT = re.compile(rf"({_ENTITY}) ({_WORD}) ({_ENTITY})")
_GENERIC = re.compile(rf"(All )?([A-Za-z]+(?:, {_WORD})*) (things|people) are (not )?({_WORD})")


class Literal(NamedTuple):
    """A (possibly negated) atom: subject, relation ("is" or a verb's base form), object."""

    subject: str
    relation: str
    object: str
    positive: bool = True

    def negate(self) -> Literal:
        return Literal(self[0], self[1], self[2], not self[3])

    def ground(self, entity: str) -> Literal:
        if self.subject == VAR or self.object == VAR:
            return Literal(entity if self.subject == VAR else self.subject, self.relation,
                           entity if self.object == VAR else self.object, self.positive)
        return self


@dataclass(frozen=True)
class Rule:
    conditions: tuple[Literal, ...]
    conclusion: Literal
    text: str

    @property
    def variable(self) -> bool:
        return any(VAR in (c.subject, c.object) for c in (*self.conditions, self.conclusion))

    def concludes(self, statement: Literal) -> bool:
        """Whether some grounding of this rule's conclusion is the statement or its negation."""
        c = self.conclusion
        return c.relation == statement.relation and c.object in (statement.object, VAR) \
            and c.subject in (statement.subject, VAR)


# ---------------------------------------------------------------- verbs


def third_person(base: str) -> str:
    """`chase` -> `chases`, `watch` -> `watches`, `carry` -> `carries`; `base_form` inverts it."""
    if base.endswith(("s", "ch", "sh", "x", "z", "o")):
        return base + "es"
    if len(base) > 2 and base.endswith("y") and base[-2] not in "aeiou":
        return base[:-1] + "ies"
    return base + "s"


def base_form(verb: str) -> str:
    """The base form of a third-person verb (`likes` -> `like`, `sees` -> `see`), by rule, open vocabulary."""
    if len(verb) > 4 and verb.endswith("ies"):
        return verb[:-3] + "y"
    if verb.endswith(("sses", "ches", "shes", "xes", "zes", "oes")):
        return verb[:-2]
    if len(verb) > 2 and verb.endswith("s") and not verb.endswith("ss"):
        return verb[:-1]
    raise ValueError(f"not a third-person verb: {verb!r}")


def _base(word: str) -> str:
    """A base verb form; one ending in a single `s` reads as a third-person form (`does not likes`)."""
    if word.endswith("s") and not word.endswith("ss"):
        raise ValueError(f"not a base verb form: {word!r}")
    return _word(word)


def regular_verb(base: str) -> bool:
    """True when the verb round-trips through third_person/base_form (the generator only uses these)."""
    if base.endswith("s") and not base.endswith("ss"):
        return False
    try:
        return base_form(third_person(base)) == base
    except ValueError:
        return False


# ---------------------------------------------------------------- parsing


def _entity(text: str) -> str:
    """Canonical entity: `the cow` (lower-case article) or a name."""
    if text.startswith(("The ", "the ")):
        noun = text[4:]
        if any(w in RESERVED for w in noun.split()):
            raise ValueError(f"not an entity: {text!r}")
        return "the " + noun
    if re.fullmatch(_NAME, text) and text.lower() not in RESERVED:
        return text
    raise ValueError(f"not an entity: {text!r}")


def _word(text: str) -> str:
    if not re.fullmatch(_WORD, text) or text in RESERVED:
        raise ValueError(f"not a content word: {text!r}")
    return text


_VAR_INTRO = {"someone": "they", "something": "it"}
_PRONOUNS = frozenset(_VAR_INTRO.values())


def _clause(text: str, subject_ok: bool = True) -> Literal:
    """One clause: `<subject> is [not] A`, `<subject> <verb> <entity>`, `<subject> does not <verb> <entity>`;
    `they` takes `are`/`do not`/base verbs. The subject may be someone/something/they/it or an entity."""
    words = text.split(" ")
    for n_subj in range(1, len(words)):
        subj_text, rest = " ".join(words[:n_subj]), words[n_subj:]
        low = subj_text.lower()
        if low in _VAR_INTRO or low in _PRONOUNS:
            subject, plural = VAR, low == "they"
        else:
            try:
                subject = _entity(subj_text)
            except ValueError:
                continue
            plural = False
        lit = _predicate(subject, rest, plural)
        if lit is not None:
            return lit
    raise ValueError(f"not a ProofWriter clause: {text!r}")


def _predicate(subject: str, rest: list[str], plural: bool) -> Literal | None:
    be, do = ("are", "do") if plural else ("is", "does")
    positive = True
    if len(rest) >= 2 and rest[0] in (be, do) and rest[1] == "not":
        positive, head, rest = False, rest[0], rest[2:]
    elif rest and rest[0] == be:
        head, rest = be, rest[1:]
    else:
        head = ""
    try:
        if head == be:
            if len(rest) != 1:
                return None
            return Literal(subject, IS, _word(rest[0]), positive)
        if len(rest) < 2:
            return None
        if head == do:  # `does not like the cat`: base form given
            verb = _base(rest[0])
        elif head == "" and rest[0] not in ("is", "are", "does", "do"):
            verb = _base(rest[0]) if plural else base_form(_word(rest[0]))
        else:
            return None
        return Literal(subject, verb, _entity(" ".join(rest[1:])), positive)
    except ValueError:
        return None


def _conjunction(text: str) -> list[Literal]:
    """`someone is big and not red and they like the cat`: bare `A` / `not A` continue the last attribute clause."""
    out: list[Literal] = []
    for part in text.split(" and "):
        words = part.split(" ")
        if out and out[-1].relation == IS and (len(words) == 1 or (len(words) == 2 and words[0] == "not")):
            out.append(Literal(out[-1].subject, IS, _word(words[-1]), len(words) == 1))
        else:
            out.append(_clause(part))
    return out


def parse_sentence(sentence: str) -> Literal | Rule:
    """A fact (a ground literal) or a rule; ValueError naming the sentence otherwise."""
    s = sentence.strip()
    try:
        if not s.endswith("."):
            raise ValueError("no full stop")
        body = s[:-1]
        if body.startswith("If "):
            cond_text, sep, concl_text = body[3:].partition(" then ")
            if not sep:
                raise ValueError("no `then`")
            conditions = _conjunction(cond_text)
            conclusion = _clause(concl_text)
            if _uses_var((*conditions, conclusion)) and not any(
                w in ("someone", "something") for w in cond_text.lower().split()
            ):
                raise ValueError("a pronoun with no someone/something")
            if conclusion.object == VAR or any(c.object == VAR for c in conditions):
                raise ValueError("a variable in object position")
            return Rule(tuple(conditions), conclusion, s)
        if m := _GENERIC.fullmatch(body):
            attrs = [a.lower() for a in m.group(2).split(", ")]
            if m.group(1) is None and not m.group(2)[0].isupper():
                raise ValueError("lower-case sentence start")
            conds = tuple(Literal(VAR, IS, _word(a)) for a in attrs)
            return Rule(conds, Literal(VAR, IS, _word(m.group(5)), m.group(4) is None), s)
        lit = _clause(body)
        if lit.subject == VAR:
            raise ValueError("a fact about someone/something")
        if not body[0].isupper():
            raise ValueError("lower-case sentence start")
        return lit
    except ValueError as e:
        raise ValueError(f"not a ProofWriter sentence: {sentence!r} ({e})") from None


def _uses_var(lits: Iterable[Literal]) -> bool:
    return any(VAR in (lit.subject, lit.object) for lit in lits)


def parse_statement(text: str) -> Literal:
    """A question: one ground literal (`The cow does not see the cat.`)."""
    parsed = parse_sentence(text)
    if not isinstance(parsed, Literal):
        raise ValueError(f"not a ProofWriter statement: {text!r}")
    return parsed


# ---------------------------------------------------------------- rendering


def _display(entity: str, initial: bool) -> str:
    return "The" + entity[3:] if initial and entity.startswith("the ") else entity


def clause_text(lit: Literal, subject: str, plural: bool = False) -> str:
    """Render a literal with the given subject wording (`someone`, `they`, `The cow`, ...)."""
    neg = "" if lit.positive else "not "
    if lit.relation == IS:
        return f"{subject} {'are' if plural else 'is'} {neg}{lit.object}"
    if lit.positive:
        return f"{subject} {lit.relation if plural else third_person(lit.relation)} {lit.object}"
    return f"{subject} {'do' if plural else 'does'} not {lit.relation} {lit.object}"


def fact_text(lit: Literal) -> str:
    """`The cow is not red.`, `Anne likes the cat.`"""
    return clause_text(lit, _display(lit.subject, True)) + "."


def rule_text(conditions: Iterable[Literal], conclusion: Literal, person: bool = True, compact: bool = True) -> str:
    """`If someone is big and not red and they like the cat then they are kind.` (people: someone/they,
    things: something/it); `compact` joins consecutive attribute conditions of the variable (`is big and red`)."""
    intro, pronoun = ("someone", "they") if person else ("something", "it")
    parts: list[str] = []
    seen_var = False
    prev: Literal | None = None
    for c in conditions:
        if c.subject == VAR:
            if compact and prev is not None and prev.subject == VAR and prev.relation == IS and c.relation == IS:
                parts[-1] += f" and {'' if c.positive else 'not '}{c.object}"
                prev = c
                continue
            subj, plural = (pronoun, person) if seen_var else (intro, False)
            seen_var = True
        else:
            subj, plural = c.subject, False
        parts.append(clause_text(c, subj, plural))
        prev = c
    if conclusion.subject == VAR:
        concl = clause_text(conclusion, pronoun, person)
    else:
        concl = clause_text(conclusion, conclusion.subject)
    return f"If {' and '.join(parts)} then {concl}."


def generic_text(conditions: Iterable[Literal], conclusion: Literal, person: bool, with_all: bool) -> str:
    """`All red, cold things are round.`, `Young people are not furry.` (positive attribute conditions only)."""
    attrs = ", ".join(c.object for c in conditions)
    neg = "" if conclusion.positive else "not "
    text = f"{'All ' if with_all else ''}{attrs} {'people' if person else 'things'} are {neg}{conclusion.object}."
    return text[0].upper() + text[1:]


def generic_ok(conditions: Iterable[Literal], conclusion: Literal) -> bool:
    """Whether a rule can be phrased as `All X things are Y.`"""
    conds = list(conditions)
    return bool(conds) and conclusion.subject == VAR and conclusion.relation == IS and all(
        c.subject == VAR and c.relation == IS and c.positive for c in conds
    )


# ---------------------------------------------------------------- solving


@dataclass(frozen=True)
class Proof:
    depth: int
    support: frozenset[str]  # the fact and rule sentences the proof uses


@dataclass(frozen=True)
class Theory:
    facts: tuple[tuple[Literal, str], ...]  # (ground literal, sentence)
    rules: tuple[Rule, ...]

    @classmethod
    def parse(cls, sentences: Iterable[str]) -> Theory:
        facts: list[tuple[Literal, str]] = []
        rules: list[Rule] = []
        for s in sentences:
            parsed = parse_sentence(s)
            if isinstance(parsed, Rule):
                rules.append(parsed)
            else:
                facts.append((parsed, s.strip()))
        return cls(tuple(facts), tuple(rules))

    def entities(self) -> tuple[str, ...]:
        """Every constant the theory mentions (the domain of its variable rules)."""
        return self._entities

    @functools.cached_property
    def _entities(self) -> tuple[str, ...]:
        out: dict[str, None] = {}
        lits = [lit for lit, _ in self.facts] + [c for r in self.rules for c in (*r.conditions, r.conclusion)]
        for lit in lits:
            for e in (lit.subject, lit.object if lit.relation != IS else VAR):
                if e != VAR:
                    out[e] = None
        return tuple(out)

    def sentences(self) -> tuple[str, ...]:
        return tuple(s for _, s in self.facts) + tuple(r.text for r in self.rules)


@dataclass
class Closure:
    """Every provable literal with its shallowest proof; contradictions are pairs proven both ways."""

    theory: Theory
    proofs: dict[Literal, Proof] = field(default_factory=dict)

    @property
    def contradictions(self) -> list[Literal]:
        return sorted(lit for lit in self.proofs if lit.positive and lit.negate() in self.proofs)

    def answer(self, statement: Literal | str) -> tuple[str, Proof | None]:
        """OWA: True if provable, False if its complement is, else Unknown."""
        lit = parse_statement(statement) if isinstance(statement, str) else statement
        yes, no = self.proofs.get(lit), self.proofs.get(lit.negate())
        if yes is not None and no is not None:
            raise ValueError(f"contradiction: both {lit} and its negation are provable")
        if yes is not None:
            return "True", yes
        if no is not None:
            return "False", no
        return "Unknown", None

    def related(self, statement: Literal) -> tuple[str, ...]:
        """Support for an Unknown: the facts about its subject and the rules that could conclude it."""
        facts = [s for lit, s in self.theory.facts if statement.subject in (lit.subject, lit.object)]
        rules = [r.text for r in self.theory.rules if r.concludes(statement)]
        return tuple(dict.fromkeys(facts + rules))


def solve(theory: Theory, start: Closure | None = None) -> Closure:
    """Forward chaining to a fixpoint over ground literals, keeping each literal's shallowest proof.

    A negated condition needs its negative literal proven (no negation as failure). The variable of a
    rule ranges over the theory's entities. A worklist re-fires only the rules with a condition that a
    new or deeper-than-needed literal matches, until nothing improves (Bellman-Ford on proof depth).
    `start`, the closure of a sub-theory with the same entities, only saves work: its proofs are valid
    upper bounds, so relaxing from them reaches the same depths.
    """
    proofs: dict[Literal, Proof] = dict(start.proofs) if start is not None else {}
    entities = theory.entities()
    index: dict[tuple[str, str, bool], list[tuple[Rule, Literal]]] = {}
    for rule in theory.rules:
        for c in rule.conditions:
            index.setdefault((c.relation, c.object, c.positive), []).append((rule, c))
    agenda: deque[Literal] = deque()

    def fire(rule: Rule, x: str) -> None:
        premises = []
        for c in rule.conditions:
            p = proofs.get(c.ground(x) if x else c)
            if p is None:
                return
            premises.append(p)
        concl = rule.conclusion.ground(x) if x else rule.conclusion
        depth = 1 + max(p.depth for p in premises)
        old = proofs.get(concl)
        if old is None or depth < old.depth:
            proofs[concl] = Proof(depth, frozenset((rule.text,)).union(*(p.support for p in premises)))
            agenda.append(concl)

    for lit, s in theory.facts:
        if lit not in proofs or proofs[lit].depth > 0:
            proofs[lit] = Proof(0, frozenset((s,)))
            agenda.append(lit)
    if start is not None:  # new rules, and old variable rules on new entities, may fire on proven literals
        old_rules, old_entities = set(start.theory.rules), set(start.theory.entities())
        new_entities = [e for e in entities if e not in old_entities]
        for rule in theory.rules:
            domain = entities if rule.variable else ("",)
            for x in domain if rule not in old_rules else new_entities if rule.variable else ():
                fire(rule, x)
    while agenda:
        lit = agenda.popleft()
        for rule, c in index.get((lit.relation, lit.object, lit.positive), ()):
            if c.subject == VAR:
                fire(rule, lit.subject)
            elif c.subject == lit.subject:
                for x in entities if rule.variable else ("",):
                    fire(rule, x)
    return Closure(theory, proofs)
