"""Generated knowledge sets in the full ProofWriter language, open vocabulary, solver-labelled questions."""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from training.data.episode import Episode, Question
from training.data.pw_logic import (
    IS,
    RESERVED,
    VAR,
    Closure,
    Literal,
    Proof,
    Rule,
    Theory,
    fact_text,
    generic_ok,
    generic_text,
    regular_verb,
    rule_text,
    solve,
    third_person,
)

GRAMMARS = ("AttNoneg", "AttNeg", "RelNoneg", "RelNeg")
VOCABS = ("proofwriter", "open", "mixed")

# ProofWriter's own words (depth5_mixed_train and the owa files).
PW_NAMES = ("Anne", "Bob", "Charlie", "Dave", "Erin", "Fiona", "Gary", "Harry", "Alan", "Eric", "Fred")
PW_ATTRIBUTES = ("big", "blue", "cold", "furry", "green", "kind", "nice", "quiet", "red", "rough", "round",
                 "smart", "white", "young")
PW_ANIMALS = ("bald eagle", "bear", "cat", "cow", "dog", "lion", "mouse", "rabbit", "squirrel", "tiger")
PW_VERBS = ("chase", "eat", "like", "need", "see", "visit")

# Words that would read as logic rather than as a symbol.
_AVOID = frozenset(("no", "nor", "never", "none", "nobody", "nothing", "neither", "without", "true", "false",
                    "unknown", "every", "each", "some", "any", "also", "can", "may", "might", "will", "would",
                    "should", "must", "has", "have", "had", "was", "were", "been", "being", "that", "this", "what",
                    "which", "who", "whom", "whose", "there", "their", "them", "these", "those", "its", "his",
                    "her", "him", "she", "you", "your", "our", "we", "me", "my", "or", "but", "if", "when"))


@functools.cache
def open_words() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(names, words, verbs) from faker's en_US person and lorem lists: capitalised first and last names;
    lower-case alphabetic words of 3-10 letters for attributes and nouns; the regular ones double as verbs."""
    from faker.providers.lorem.en_US import Provider as Lorem
    from faker.providers.person.en_US import Provider as Person

    pw = {w.lower() for w in (*PW_NAMES, *PW_ATTRIBUTES, *PW_VERBS)} | {w for a in PW_ANIMALS for w in a.split()}
    names = sorted({n for n in (*Person.first_names, *Person.last_names)
                    if re.fullmatch(r"[A-Z][a-z]{2,9}", n) and n.lower() not in RESERVED | _AVOID | pw})
    words = sorted({w for w in Lorem.word_list
                    if re.fullmatch(r"[a-z]{3,10}", w) and w not in RESERVED | _AVOID | pw})
    verbs = tuple(w for w in words if regular_verb(w) and third_person(w) not in RESERVED)
    return tuple(names), tuple(words), verbs


@dataclass
class Lexicon:
    """One episode's words, plus spares that never appear in its knowledge (for Unknowns about absent things)."""

    entities: list[str]
    attributes: list[str]
    verbs: list[str]
    spare_entities: list[str]
    spare_attributes: list[str]
    spare_verbs: list[str]


def _draw(rng: random.Random, pw: Sequence[str], open_: Sequence[str], n: int, p_pw: float,
          taken: set[str]) -> list[str]:
    """n distinct words, each from ProofWriter's list with probability p_pw (spilling to open_ when it runs out)."""
    out: list[str] = []
    for _ in range(n):
        for attempt in range(40):
            w = rng.choice(pw if attempt < 20 and rng.random() < p_pw else open_)
            if w.lower() not in taken:
                taken.add(w.lower())
                out.append(w)
                break
    return out


def draw_lexicon(rng: random.Random, relational: bool, n_entities: int, n_attributes: int, n_verbs: int,
                 vocab: str = "mixed", spares: int = 3) -> Lexicon:
    """Names (attribute grammars) or `the <animal>` entities (relation grammars), attributes and verbs, each
    from ProofWriter's lists or faker's; `mixed` picks per episode all-ProofWriter, all-open or a blend."""
    if vocab not in VOCABS:
        raise ValueError(f"vocab must be one of {VOCABS}, not {vocab!r}")
    names, words, verbs = open_words()
    p_pw = rng.choice((0.0, 0.5, 1.0)) if vocab == "mixed" else float(vocab == "proofwriter")
    taken: set[str] = set()
    attrs = _draw(rng, PW_ATTRIBUTES, words, n_attributes + spares, p_pw, taken)
    vs = _draw(rng, PW_VERBS, verbs, n_verbs + spares, p_pw, taken)
    if relational:
        ents = ["the " + w for w in _draw(rng, PW_ANIMALS, words, n_entities + spares, p_pw, taken)]
    else:
        ents = _draw(rng, PW_NAMES, names, n_entities + spares, p_pw, taken)
    return Lexicon(ents[:n_entities], attrs[:n_attributes], vs[:n_verbs], ents[n_entities:], attrs[n_attributes:],
                   vs[n_verbs:])


# ---------------------------------------------------------------- knowledge


@dataclass
class _Builder:
    rng: random.Random
    lex: Lexicon
    relational: bool
    negation: bool
    max_depth: int

    def __post_init__(self) -> None:
        self.facts: list[Literal] = []
        self.rules: list[tuple[tuple[Literal, ...], Literal]] = []
        self.fact_pairs: list[tuple[Literal, str]] = []
        self.rule_objs: list[Rule] = []
        self.closure = Closure(Theory((), ()))

    def _literal(self, subject: str, attr_share: float = 0.45, p_neg: float = 0.2) -> Literal:
        rng = self.rng
        positive = not (self.negation and rng.random() < p_neg)
        others = [e for e in self.lex.entities if e != subject]
        if self.relational and self.lex.verbs and others and rng.random() >= attr_share:
            return Literal(subject, rng.choice(self.lex.verbs), rng.choice(others), positive)
        return Literal(subject, IS, rng.choice(self.lex.attributes), positive)

    def _known(self, lit: Literal) -> bool:
        return lit in self.closure.proofs or lit.negate() in self.closure.proofs

    def add_fact(self) -> bool:
        assert not self.rules, "facts first"
        for _ in range(20):
            lit = self._literal(self.rng.choice(self.lex.entities))
            if not self._known(lit):  # facts come before rules: a fact's closure is the fact itself
                text = fact_text(lit)
                self.facts.append(lit)
                self.fact_pairs.append((lit, text))
                self.closure.proofs[lit] = Proof(0, frozenset((text,)))
                return True
        return False

    def _resolve(self, rule: Rule) -> bool:
        """Add a rule and solve from the last closure; refused, leaving state alone, when it makes a
        contradiction or a proof deeper than max_depth."""
        theory = Theory(tuple(self.fact_pairs), (*self.rule_objs, rule))
        old = self.closure.proofs
        closure = solve(theory, self.closure)
        for lit, p in closure.proofs.items():
            if (lit not in old or p.depth < old[lit].depth) and (
                    p.depth > self.max_depth or lit.negate() in closure.proofs):
                return False
        self.closure = closure
        self.rule_objs.append(rule)
        return True

    def add_rule(self, fire: bool, near_miss: bool = False) -> bool:
        for _ in range(8):
            spec = self._near_miss_rule() if near_miss else self._firing_rule() if fire else self._random_rule()
            if spec is None or spec in self.rules or any(spec[1][:3] == c[:3] for c in spec[0]):
                continue  # a rule that concludes (or denies) its own condition reads as nonsense
            if self._resolve(Rule(spec[0], spec[1], f"rule{len(self.rules)}")):
                self.rules.append(spec)
                return True
        return False

    def _firing_rule(self) -> tuple[tuple[Literal, ...], Literal] | None:
        """Conditions an entity already satisfies (so the rule fires and proofs deepen), a new conclusion."""
        rng, proofs = self.rng, self.closure.proofs
        by_entity: dict[str, list[tuple[Literal, Proof]]] = {}
        for lit, p in proofs.items():
            if p.depth < self.max_depth:
                by_entity.setdefault(lit.subject, []).append((lit, p))
        if not by_entity:
            return None
        if rng.random() < 0.75:  # extend the deepest chain so far
            e = max(sorted(by_entity), key=lambda ent: max(p.depth for _, p in by_entity[ent]))
        else:
            e = rng.choice(sorted(by_entity))
        pool = sorted(by_entity[e])
        k = min(len(pool), rng.choices((1, 2, 3), (0.45, 0.4, 0.15))[0])
        deepest = max(pool, key=lambda lp: lp[1].depth)
        conds = [deepest[0]] if rng.random() < 0.85 else []
        rest = [lit for lit, _ in pool if lit not in conds]
        conds += rng.sample(rest, min(len(rest), k - len(conds)))
        variable = rng.random() < 0.85
        subject = e
        if self.relational and rng.random() < 0.3:
            subject = rng.choice(self.lex.entities)  # `then the squirrel likes the rabbit`
        concl = None
        for _ in range(10):
            cand = self._literal(subject, attr_share=0.5)
            if not self._known(cand):
                concl = cand
                break
        if concl is None:
            return None
        if variable:
            conds = [c._replace(subject=VAR) if c.subject == e else c for c in conds]
            if self.relational and len(conds) < 3 and rng.random() < 0.15:  # `and the rabbit is kind`
                other = [lit for lit, p in proofs.items() if lit.subject != e and p.depth < self.max_depth]
                if other:
                    conds.append(rng.choice(sorted(other)))
            if concl.subject == e:
                concl = concl._replace(subject=VAR)
        return self._ordered(conds), concl

    def _near_miss_rule(self) -> tuple[tuple[Literal, ...], Literal] | None:
        """A rule that almost fires: conditions an entity meets plus one it does not (unproven, or the opposite
        of what is known: `Bob is not kind.` and `If someone is kind then ...`), so the conclusion about that
        entity is the hard Unknown, which small random sets seldom hold."""
        rng, proofs = self.rng, self.closure.proofs
        by_entity: dict[str, list[Literal]] = {}
        for lit in proofs:
            by_entity.setdefault(lit.subject, []).append(lit)
        if not by_entity:
            return None
        e = rng.choice(sorted(by_entity))
        met = sorted(by_entity[e])
        conds = rng.sample(met, min(len(met), rng.choice((0, 1, 1, 2))))
        spare = [lit for lit in met if lit not in conds]
        unmet: Literal | None = None
        if self.negation and spare and rng.random() < 0.5:  # denied by what is known
            unmet = rng.choice(spare).negate()
        for _ in range(10):  # else unproven
            if unmet is not None:
                break
            cand = self._literal(e, p_neg=0.15)
            if not self._known(cand):
                unmet = cand
        concl = None
        for _ in range(10):  # drawn even when unmet is None, so the episode stream the shipped run saw stays
            cand = self._literal(e, attr_share=0.5)
            if unmet is not None and not self._known(cand) and cand[:3] != unmet[:3]:
                concl = cand
                break
        if unmet is None or concl is None:
            return None
        conds.append(unmet)
        if rng.random() < 0.85:
            conds = [c._replace(subject=VAR) if c.subject == e else c for c in conds]
            concl = concl._replace(subject=VAR)
        return self._ordered(conds), concl

    def _random_rule(self) -> tuple[tuple[Literal, ...], Literal] | None:
        """A distractor: random conditions, which may or may not fire."""
        rng = self.rng
        subject = rng.choice(self.lex.entities)
        k = rng.choices((1, 2, 3), (0.45, 0.4, 0.15))[0]
        conds = list(dict.fromkeys(self._literal(subject, p_neg=0.15) for _ in range(k)))
        concl = self._literal(subject, attr_share=0.5)
        if rng.random() < 0.8:
            conds = [c._replace(subject=VAR) for c in conds]
            if not self.relational or rng.random() < 0.8:  # `then the cat is red` only in relation grammars
                concl = concl._replace(subject=VAR)
        return self._ordered(conds), concl

    @staticmethod
    def _ordered(conds: list[Literal]) -> tuple[Literal, ...]:
        """ProofWriter opens a variable rule with a positive condition about the variable when it has one."""
        first = [c for c in conds if c.subject == VAR and c.positive]
        if first:
            conds = [first[0], *(c for c in conds if c != first[0])]
        return tuple(dict.fromkeys(conds))

    def render(self) -> list[str]:
        rng = self.rng
        facts = [fact_text(f) for f in self.facts]
        rules = []
        generic_p = 0.1 if self.relational else 0.55
        for conds, concl in self.rules:
            person = rng.random() < 0.5
            if generic_ok(conds, concl) and len(conds) <= 3 and rng.random() < generic_p:
                rules.append(generic_text(conds, concl, person, rng.random() < 0.5))
            else:
                rules.append(rule_text(conds, concl, person))
        if rng.random() < 0.5:  # ProofWriter's order (facts, then rules) or shuffled
            return list(dict.fromkeys(facts + rules))
        out = list(dict.fromkeys(facts + rules))
        rng.shuffle(out)
        return out


def _size(rng: random.Random) -> int:
    """Skewed to small sets (half are 1-8 sentences) but covering up to 64."""
    r = rng.random()
    if r < 0.5:
        return rng.randint(1, 8)
    if r < 0.8:
        return rng.randint(9, 24)
    return rng.randint(25, 64)


def build_knowledge(rng: random.Random, n_sentences: int, grammar: str, vocab: str = "mixed",
                    rule_share: float | None = None, max_depth: int = 5, p_fire: float = 0.75,
                    p_near_miss: float = 0.0) -> tuple[list[str], Lexicon]:
    """Facts then rules built to fire (so proofs reach max_depth where size allows), plus distractors (near
    misses, see _Builder._near_miss_rule, with probability p_near_miss each); never a contradiction. Returns the
    sentences and the episode's lexicon. p_near_miss 0 draws exactly what it drew before the option existed."""
    if grammar not in GRAMMARS:
        raise ValueError(f"grammar must be one of {GRAMMARS}, not {grammar!r}")
    relational, negation = grammar.startswith("Rel"), grammar.endswith("Neg") and not grammar.endswith("Noneg")
    n = max(1, n_sentences)
    share = rule_share if rule_share is not None else rng.uniform(0.25, 0.55)
    n_rules = int(rng.random() < 0.2) if n == 1 else min(n - 1, round(n * share))
    if share <= 0:
        n_rules = 0
    n_facts = n - n_rules
    n_ent = rng.randint(max(1, n // 10), max(1, min(8, n // 4 + 1)))
    if relational:
        n_ent = max(n_ent, 2) if n > 1 else n_ent
    n_verbs = rng.randint(1, min(4, 1 + n // 6)) if relational else 0
    n_attr = max(1, min(16, rng.randint(max(1, n // (6 if relational else 4)), 2 + n // 3)))
    while n_ent * n_attr + n_ent * (n_ent - 1) * n_verbs < 2 * n_facts + 2:  # room for the facts
        if n_attr < 10 or n_ent >= 8:
            n_attr += 1
        else:
            n_ent += 1
    lex = draw_lexicon(rng, relational, n_ent, n_attr, n_verbs, vocab)
    b = _Builder(rng, lex, relational, negation, max_depth)
    for _ in range(n_facts):
        b.add_fact()
    for _ in range(n_rules):
        if p_near_miss and rng.random() < p_near_miss and b.add_rule(fire=False, near_miss=True):
            continue
        if not b.add_rule(fire=rng.random() < p_fire):
            b.add_rule(fire=False)
    if not b.facts and not b.rules:  # a one-sentence set whose only rule was refused: make it a fact instead
        b.add_fact()
    sentences = b.render()
    if not sentences:
        raise RuntimeError(f"no sentence could be generated for a {n}-sentence {grammar} set")
    return sentences, lex


# ---------------------------------------------------------------- questions


def _ordered_support(closure: Closure, proof: Proof) -> tuple[str, ...]:
    order = {s: i for i, s in enumerate(closure.theory.sentences())}
    return tuple(sorted(proof.support, key=lambda s: order.get(s, len(order))))


# Shares of a knowledge set's Unknown questions: about absent entities, attributes or verbs; and, of the rest,
# conclusions of rules that do not fire. `python -m training.data.unknown_kinds` compares the generator's
# Unknowns with the real ones of depth5_mixed_train.json (results/data/unknown_kinds.json).
ABSENT_SHARE = 0.15
HARD_SHARE = 0.6


def _unknown_atoms(closure: Closure, lex: Lexicon, rng: random.Random, n: int) -> list[Literal]:
    """Unproven atoms: rule conclusions first (the hard ones), then other in-vocabulary statements, then
    statements about entities, attributes and verbs absent from the knowledge."""
    theory, proofs = closure.theory, closure.proofs
    entities = list(theory.entities())
    attrs = sorted({lit.object for lit, _ in theory.facts if lit.relation == IS}
                   | {c.object for r in theory.rules for c in (*r.conditions, r.conclusion) if c.relation == IS})
    verbs = sorted({lit.relation for lit, _ in theory.facts if lit.relation != IS}
                   | {c.relation for r in theory.rules for c in (*r.conditions, r.conclusion) if c.relation != IS})
    attrs = attrs or lex.attributes

    def unknown(lit: Literal) -> bool:
        return lit not in proofs and lit.negate() not in proofs

    hard = [Literal(e if r.conclusion.subject == VAR else r.conclusion.subject, r.conclusion.relation,
                    r.conclusion.object) for r in theory.rules for e in entities]
    hard = [lit for lit in hard if lit.subject != lit.object]
    near = [Literal(e, IS, a) for e in entities for a in attrs]
    near += [Literal(e, v, o) for e in entities for v in verbs for o in entities if o != e]

    def absent() -> Literal | None:
        r = rng.random()
        ents = entities or lex.spare_entities
        if r < 0.4 and lex.spare_entities:  # someone/something not in the knowledge
            subj = rng.choice(lex.spare_entities)
            if verbs and (rng.random() < 0.3 or not attrs):
                return Literal(subj, rng.choice(verbs), rng.choice(ents))
            if attrs:
                return Literal(subj, IS, rng.choice(attrs))
        if r < 0.75 and lex.spare_attributes:
            return Literal(rng.choice(ents), IS, rng.choice(lex.spare_attributes))
        if verbs and lex.spare_verbs and len(ents) > 1:
            s, o = rng.sample(ents, 2)
            return Literal(s, rng.choice(lex.spare_verbs), o)
        if lex.spare_attributes or attrs:
            return Literal(rng.choice(lex.spare_entities or ents), IS, rng.choice(lex.spare_attributes or attrs))
        # a relations-only knowledge set and a lexicon with no attributes to spare (a real RelNoneg context
        # has one): an unproven relation between its own entities
        if verbs and len(ents) > 1:
            s, o = rng.sample(ents, 2)
            return Literal(s, rng.choice(verbs), o)
        return None

    rng.shuffle(hard)
    rng.shuffle(near)
    picked: dict[Literal, None] = {}
    # Real depth-5 Unknowns are about the knowledge's own entities, and half of them are conclusions of rules
    # that do not fire: the hard kind, so it gets the larger quota (absent things stay in, as a smaller share).
    n_absent = max(1, round(n * ABSENT_SHARE)) if n > 1 else int(rng.random() < 0.5)
    for pool, quota in ((hard, round((n - n_absent) * HARD_SHARE)), (near, n - n_absent)):
        for lit in pool:
            if len(picked) >= quota:
                break
            if unknown(lit):
                picked[lit] = None
    for _ in range(20 * n):
        if len(picked) >= n:
            break
        found = absent()
        if found is not None and unknown(found):
            picked[found] = None
    return list(picked)


def questions_for_full(closure: Closure, lex: Lexicon, rng: random.Random, grammar: str | None = None
                       ) -> list[Question]:
    """Every provable literal in both wordings (True, and its negation False), and about as many Unknowns,
    each asked in both wordings, so a question's wording never gives its label away."""
    qs: list[Question] = []
    provable = sorted(closure.proofs.items())
    for lit, proof in provable:
        support = _ordered_support(closure, proof)
        qs.append(Question(fact_text(lit), "True", proof.depth, support, grammar))
        qs.append(Question(fact_text(lit.negate()), "False", proof.depth, support, grammar))
    for lit in _unknown_atoms(closure, lex, rng, max(2, (len(provable) + 1) // 2)):
        related = closure.related(lit)
        for wording in (lit, lit.negate()):
            qs.append(Question(fact_text(wording), "Unknown", None, related, grammar))
    rng.shuffle(qs)
    return qs


# ---------------------------------------------------------------- episodes


def _episode(rng: random.Random, ident: str, source: str, sentences: list[str], lex: Lexicon,
             grammar: str) -> Episode:
    closure = solve(Theory.parse(sentences))  # label from the text itself: the parser is part of the check
    return Episode(ident, tuple(sentences), tuple(questions_for_full(closure, lex, rng, grammar)), source)


def generate_full_episode(rng: random.Random, index: int = 0, n_sentences: int | None = None,
                          grammar: str | None = None, vocab: str = "mixed") -> Episode:
    """One knowledge set of 1-64 sentences (sampled, skewed small, when n_sentences is None) in a grammar
    (sampled when None), with every provable literal asked both ways and as many Unknowns."""
    g = grammar or rng.choice(GRAMMARS)
    n = n_sentences if n_sentences is not None else _size(rng)
    sentences, lex = build_knowledge(rng, n, g, vocab)
    return _episode(rng, f"full-{index}", f"gen-full-{g}", sentences, lex, g)


def generate_lookup_full(rng: random.Random, index: int = 0, grammar: str | None = None,
                         vocab: str = "mixed") -> Episode:
    """Curriculum: 1-4 facts, no rules (negated facts and relations in those grammars); every answer is a lookup."""
    g = grammar or rng.choice(GRAMMARS)
    sentences, lex = build_knowledge(rng, rng.randint(1, 4), g, vocab, rule_share=0.0)
    return _episode(rng, f"lookup-full-{index}", f"gen-lookup-{g}", sentences, lex, g)


def generate_onehop_full(rng: random.Random, index: int = 0, grammar: str | None = None,
                         vocab: str = "mixed") -> Episode:
    """Curriculum: 2-6 sentences with one or two rules that fire on stated facts (depth <= 1)."""
    g = grammar or rng.choice(GRAMMARS)
    n = rng.randint(2, 6)
    sentences, lex = build_knowledge(rng, n, g, vocab, rule_share=rng.choice((0.25, 0.34, 0.5)), max_depth=1,
                                     p_fire=0.9)
    return _episode(rng, f"onehop-full-{index}", f"gen-onehop-{g}", sentences, lex, g)


def generate_near_miss_full(rng: random.Random, index: int = 0, grammar: str | None = None,
                            vocab: str = "mixed") -> Episode:
    """2-8 sentences where most rules almost fire for someone (a condition unmet or denied), so the conclusion
    about them is Unknown: the kind of question small knowledge sets got wrong (`Anne is eight.` and `If Anne is
    round then Anne is rough.` answered `Anne is rough.` True)."""
    g = grammar or rng.choice(GRAMMARS)
    sentences, lex = build_knowledge(rng, rng.randint(2, 8), g, vocab, rule_share=rng.uniform(0.3, 0.6),
                                     p_near_miss=0.6)
    return _episode(rng, f"near-miss-full-{index}", f"gen-nearmiss-{g}", sentences, lex, g)


def generate_deep_full(rng: random.Random, index: int = 0, vocab: str = "mixed") -> Episode:
    """Sets of depth-5 size (12-25 sentences, as depth5_mixed_train's contexts) with rules built to chain, two
    in three in a relational grammar: the long proofs about relations that the real depth-5 data asks. Each
    rule is a near miss with probability 0.5 (where one can be built), so that Unknowns a rule concludes about a
    stated entity are about as common as in the real contexts (17% of questions; 11% with no near misses)."""
    g = rng.choice(("RelNoneg", "RelNeg", "RelNoneg", "RelNeg", "AttNoneg", "AttNeg"))
    sentences, lex = build_knowledge(rng, rng.randint(12, 25), g, vocab, rule_share=rng.uniform(0.35, 0.55),
                                     p_fire=0.9, p_near_miss=0.5)
    return _episode(rng, f"deep-full-{index}", f"gen-deep-{g}", sentences, lex, g)


def generate_easy_full(rng: random.Random, index: int = 0, grammar: str | None = None,
                       vocab: str = "mixed") -> Episode:
    """Curriculum mix: a lookup set or a one-hop set, half and half."""
    make = generate_lookup_full if rng.random() < 0.5 else generate_onehop_full
    return make(rng, index, grammar, vocab)


def iter_full_episodes(seed: int, vocab: str = "mixed") -> Iterator[Episode]:
    rng = random.Random(seed)
    i = 0
    while True:
        yield generate_full_episode(rng, i, vocab=vocab)
        i += 1
