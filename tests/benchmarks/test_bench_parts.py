"""The bench's pieces alone: break-even against a prefix cache, generated sets of any size, the report's claims."""

import random

from benchmarks.knowledge_sets import knowledge_set, union_of_parts
from benchmarks.prefix import break_even_prefix
from benchmarks.report_sections import load_note, where_each_wins
from training.data.pw_gen import generate_full_episode
from training.data.pw_logic import Theory, solve


def test_break_even_prefix() -> None:
    assert break_even_prefix(100.0, 5.0, 10.0, 15.0) == 10  # 100 + 9*5 = 145 > 10 + 9*15 = 145; 10 is below
    assert break_even_prefix(100.0, 5.0, 10.0, 5.0) is None  # the cached ask is no slower: never
    assert break_even_prefix(5.0, 5.0, 10.0, 4.0) == 1  # encoding cheaper than the prefill


def test_sets_of_every_size_are_solver_labelled() -> None:
    rng = random.Random(3)
    for n in (4, 64, 150):
        ep = knowledge_set(rng, 0, n)
        assert len(ep.facts) == n and ep.questions
        closure = solve(Theory.parse(ep.facts))
        assert not closure.contradictions
        for q in ep.questions:
            assert closure.answer(q.text)[0] == q.answer, q


def test_union_relabels_on_the_joined_theory() -> None:
    rng = random.Random(5)
    a, b = generate_full_episode(rng, 0, n_sentences=8), generate_full_episode(rng, 1, n_sentences=8)
    u = union_of_parts([a, b], "u")
    assert u.facts == a.facts + b.facts and len(u.questions) == len(a.questions) + len(b.questions)
    closure = solve(Theory.parse(u.facts))
    assert all(closure.answer(q.text)[0] == q.answer for q in u.questions)


def test_where_each_wins_follows_the_numbers() -> None:
    base = {"icr_prefix_ms": 6.0, "icr_prefix_over_ask": 0.75, "icr_prefix": {"same_window": {"ask_ms": 8.0}},
            "cheaper_encodes": {"same_window": {"icr_prefix_prefill_ms": 8.0},
                                "variants": [{"encode_ms": 400.0, "break_even_questions_prefix": None}]},
            "scaling": [
                {"n_facts": 16, "icr_fits": True, "kv_cache_bytes": 500_000, "delta_bytes": 4_000_000,
                 "ask_ms": 8.0, "accuracy_reckoning": 0.6, "accuracy_icr": 0.34, "majority_label_share": 0.34},
                {"n_facts": 256, "icr_fits": False, "kv_cache_bytes": None, "kv_cache_bytes_needed": 9_000_000,
                 "delta_bytes": 4_000_000, "icr_prompt_tokens": 3000, "context_window": 512, "ask_ms": 8.5,
                 "accuracy_reckoning": 0.5, "accuracy_icr": None, "majority_label_share": 0.34},
            ]}
    text = where_each_wins(base)
    assert "prefix-cached in-context reasoning is faster" in text
    assert "never pays back its encode" in text
    assert "at every size that fits the window the KV cache is smaller" in text
    assert "Beyond the context window" in text and "3000-token" in text and "does not yet answer well" not in text
    assert "does not read its context" in text
    faster = where_each_wins({**base, "icr_prefix_over_ask": 2.0, "cheaper_encodes": {
        "same_window": {"icr_prefix_prefill_ms": 8.0}, "variants": [{"encode_ms": 400.0,
                                                                      "break_even_questions_prefix": 40}]}})
    assert "RECKONING ask is 2.00× faster" in faster and "after 40 questions." in faster
    assert "as fast" in where_each_wins({**base, "icr_prefix_over_ask": 1.1})
    far = where_each_wins({**base, "icr_prefix": {"same_window": {"ask_ms": 8.0}, "batched": {"n_questions": 16}},
                           "cheaper_encodes": {"same_window": {"icr_prefix_prefill_ms": 8.0},
                                               "variants": [{"encode_ms": 400.0, "break_even_questions_prefix": 2550,
                                                             "accuracy": 0.95}],
                                               "icr_accuracy": 0.5, "majority_label_share": 0.5, "slice": "x, y"}})
    assert "in practice, never" in far and "Answer quality with distractors" in far
    assert load_note({"load_average": {"start": [5.2, 5, 5], "end": [4.9, 5, 5], "cpu_count": 2}})
    assert load_note({"load_average": {"start": [0.3, 0, 0], "end": [0.4, 0, 0], "cpu_count": 2}}) is None
