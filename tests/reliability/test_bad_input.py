"""Bad input over real HTTP: each gets a 4xx whose detail names the field or the limit, never a 5xx."""

import json
import time
import unicodedata
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from rel_support import Stack, check_answers, facts_for

from benchmarks.processes import metric
from tests.support import chunked_facts_body

# The stack runs with the default limits (they fit a full ProofWriter theory).
MAX_BODY = 2 * 1024 * 1024
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def alice(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client("alice") as client:
        yield client


@pytest.fixture(scope="module")
def kid(alice: httpx.Client) -> str:
    response = alice.post("/encode", json={"facts": facts_for(f"bad{time.monotonic_ns()}", 4)})
    assert response.status_code == 200, response.text
    knowledge_id: str = response.json()["knowledge_id"]
    return knowledge_id


def names(response: httpx.Response, status: int, *, loc: list[Any] | None = None, text: str | None = None) -> None:
    """The response has `status` and its detail names `loc` (a prefix of an error's loc) and/or `text`."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    detail = response.json()["detail"]
    errors = detail if isinstance(detail, list) else [{"loc": [], "msg": str(detail)}]
    if loc is not None:
        assert any(e["loc"][: len(loc)] == loc for e in errors), (loc, errors)
    if text is not None:
        assert any(text in e["msg"] for e in errors), (text, errors)


def post_raw(client: httpx.Client, url: str, content: bytes) -> httpx.Response:
    return client.post(url, content=content, headers=JSON)


# ----------------------------------------------------------------------------- size limits


def test_oversize_body_by_content_length_is_413_naming_the_limit(alice: httpx.Client) -> None:
    body = json.dumps({"facts": ["w" * 900] * 2400}).encode()
    assert len(body) > MAX_BODY
    counted = metric(alice, "reckoning_requests_total", route="/encode", status="413")
    names(post_raw(alice, "/encode", body), 413, text=f"max_body_bytes={MAX_BODY}")
    assert metric(alice, "reckoning_requests_total", route="/encode", status="413") == counted + 1  # under its route


def test_the_byte_limit_is_exact(alice: httpx.Client) -> None:
    body = json.dumps({"facts": facts_for(f"bytes{time.monotonic_ns()}", 3)}).encode()
    at_limit = body[:-1] + b" " * (MAX_BODY - len(body)) + b"}"  # JSON whitespace up to the last byte allowed
    assert len(at_limit) == MAX_BODY
    assert post_raw(alice, "/encode", at_limit).status_code == 200
    names(post_raw(alice, "/encode", at_limit[:-1] + b" }"), 413, text="max_body_bytes")


def test_oversize_body_streamed_without_content_length_is_413(alice: httpx.Client) -> None:
    names(alice.post("/encode", content=chunked_facts_body(2600, 900), headers=JSON), 413, text="max_body_bytes")


def test_ten_thousand_facts_are_refused_naming_max_facts(alice: httpx.Client) -> None:
    facts = [f"Fact {i} is true." for i in range(10_000)]
    names(alice.post("/encode", json={"facts": facts}), 422, loc=["body", "facts"], text="max_facts=256")


def test_ten_thousand_long_facts_hit_the_body_limit_first(alice: httpx.Client) -> None:
    body = json.dumps({"facts": [f"{i} " + "f" * 995 for i in range(10_000)]}).encode()
    names(post_raw(alice, "/encode", body), 413, text="max_body_bytes")


def test_limits_are_exact_at_the_boundary(alice: httpx.Client) -> None:
    tag = f"edge{time.monotonic_ns()}"
    at_limit = [f"{tag} fact {i:03d} is kind." for i in range(256)]
    assert alice.post("/encode", json={"facts": at_limit}).status_code == 200
    names(alice.post("/encode", json={"facts": [*at_limit, "one more."]}), 422, loc=["body", "facts"], text="257")
    names(alice.post("/encode", json={"facts": ["x" * 1001]}), 422, loc=["body", "facts", 0], text="max_fact_chars")
    # 1,000 characters pass max_fact_chars, but not the model: it reads 62 tokens of a fact (see below).
    names(alice.post("/encode", json={"facts": ["x" * 1000]}), 422, loc=["body", "facts", 0], text="max_fact_tokens")


def test_a_fact_with_more_tokens_than_the_model_encodes_is_422_naming_it_and_the_limit(alice: httpx.Client) -> None:
    # ~300 characters, well under max_fact_chars=1000, but more tokens than the inner loop reads (the tiny model:
    # max_fact_tokens=64, so 62 tokens of fact text): before, the rest was cut without a word, yet hashed into
    # the id and stored.
    fact = "Bob " + "and Anne and Carol " * 15 + "are all kind and nice and round."
    assert 250 < len(fact) < 1000
    loops = metric(alice, "reckoning_encode_seconds_count")
    response = alice.post("/encode", json={"facts": ["Dave is big.", fact]})
    names(response, 422, loc=["body", "facts", 1], text="at most 62 tokens per fact (max_fact_tokens")
    error = response.json()["detail"][0]
    assert error["type"] == "fact_too_long" and error["msg"].startswith("fact 1 has ")
    assert metric(alice, "reckoning_encode_seconds_count") == loops  # refused before any inner loop


def test_an_oversized_ask_is_413_in_under_a_second_saying_so(alice: httpx.Client, kid: str) -> None:
    # 256 questions x 32 multi-token choices (~150 KB): 8,192 rows in one forward before this bound.
    body = {"knowledge_id": kid, "questions": [f"Is person number {i} kind and nice?" for i in range(256)],
            "choices": [f"answer number {i} of the list" for i in range(32)]}  # fmt: skip
    asks = metric(alice, "reckoning_ask_seconds_count")
    started = time.monotonic()
    response = alice.post("/ask", json=body)
    elapsed = time.monotonic() - started
    names(response, 413, loc=["body", "questions"], text="over the limit max_ask_tokens=32,768")
    assert "256 question(s) x 32 choice(s)" in response.json()["detail"][0]["msg"]
    assert elapsed < 1.0, f"the refusal took {elapsed:.2f} s"
    assert metric(alice, "reckoning_ask_seconds_count") == asks  # no forward ran
    # The same questions in asks within the bound are answered.
    within = alice.post("/ask", json={**body, "questions": body["questions"][:8]})
    assert within.status_code == 200, within.text[:300]


ASK_LIMITS = [
    ({"questions": ["Bob is kind."] * 257}, ["body", "questions"], "max_questions=256"),
    ({"questions": [f"Q{i}?" for i in range(10_000)]}, ["body", "questions"], "max_questions=256"),
    ({"question": "q" * 1001}, ["body", "question"], "max_question_chars=1000"),
    ({"question": "Bob?", "choices": [f"c{i}" for i in range(33)]}, ["body", "choices"], "max_choices=32"),
    ({"question": "Bob?", "choices": ["yes", "c" * 201]}, ["body", "choices", 1], "max_choice_chars=200"),
    ({"question": "Bob?", "max_new_tokens": 65}, ["body", "max_new_tokens"], "64"),
    ({"question": "中" * 900}, ["body", "question"], "context"),  # fits the char limit, not the model
]


@pytest.mark.parametrize(("extra", "loc", "limit"), ASK_LIMITS)
def test_ask_limits_are_422_naming_the_limit(
    alice: httpx.Client, kid: str, extra: dict[str, Any], loc: list[Any], limit: str
) -> None:
    names(alice.post("/ask", json={"knowledge_id": kid, **extra}), 422, loc=loc, text=limit)


# ----------------------------------------------------------------------------- empty, control characters, types

ENCODE_BAD: list[tuple[str, bytes, list[Any]]] = [
    ("no facts", b"{}", ["body", "facts"]),
    ("facts null", b'{"facts": null}', ["body", "facts"]),
    ("empty list", b'{"facts": []}', ["body", "facts"]),
    ("empty fact", b'{"facts": ["Bob is kind.", ""]}', ["body", "facts", 1]),
    ("blank fact", b'{"facts": [" \\t\\n "]}', ["body", "facts", 0]),
    ("unicode-blank fact", b'{"facts": ["\\u3000\\u00a0\\u2028"]}', ["body", "facts", 0]),
    ("NUL", b'{"facts": ["Bob\\u0000 is kind."]}', ["body", "facts", 0]),
    ("BEL", b'{"facts": ["Bob\\u0007 is kind."]}', ["body", "facts", 0]),
    ("ANSI escape", b'{"facts": ["\\u001b[31mBob is red.\\u001b[0m"]}', ["body", "facts", 0]),
    ("DEL", b'{"facts": ["Bob is kind.\\u007f"]}', ["body", "facts", 0]),
    ("C1 control", b'{"facts": ["ok.", "Bob\\u0085 is kind."]}', ["body", "facts", 1]),
    ("lone surrogate", b'{"facts": ["Bob \\udc00 is kind."]}', ["body", "facts", 0]),
    ("invalid UTF-8", b'{"facts": ["Bob \xc3\x28 is kind."]}', ["body"]),
    ("not JSON", b"{facts: [Bob]}", ["body"]),
    ("empty body", b"", ["body"]),
    ("JSON null", b"null", ["body"]),
    ("JSON array", b'["Bob is kind."]', ["body"]),
    ("JSON string", b'"Bob is kind."', ["body"]),
    ("facts a string", b'{"facts": "Bob is kind."}', ["body", "facts"]),
    ("facts an object", b'{"facts": {"0": "Bob is kind."}}', ["body", "facts"]),
    ("fact a number", b'{"facts": ["Bob is kind.", 7]}', ["body", "facts", 1]),
    ("fact a list", b'{"facts": [["Bob is kind."]]}', ["body", "facts", 0]),
    ("fact a bool", b'{"facts": [true]}', ["body", "facts", 0]),
    ("ttl a string", b'{"facts": ["Bob is kind."], "ttl_s": "60"}', ["body", "ttl_s"]),
    ("ttl a bool", b'{"facts": ["Bob is kind."], "ttl_s": true}', ["body", "ttl_s"]),
    ("ttl a float", b'{"facts": ["Bob is kind."], "ttl_s": 1.5}', ["body", "ttl_s"]),
    ("ttl NaN", b'{"facts": ["Bob is kind."], "ttl_s": NaN}', ["body", "ttl_s"]),
    ("ttl negative", b'{"facts": ["Bob is kind."], "ttl_s": -5}', ["body", "ttl_s"]),
    ("ttl huge", b'{"facts": ["Bob is kind."], "ttl_s": 1' + b"0" * 40 + b"}", ["body", "ttl_s"]),
    ("ttl 5000 digits", b'{"facts": ["Bob is kind."], "ttl_s": ' + b"9" * 5000 + b"}", ["body"]),
    ("unknown field", b'{"facts": ["Bob is kind."], "fact": "x"}', ["body", "fact"]),
    ("deep nesting", b'{"facts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", ["body"]),
]


@pytest.mark.parametrize(("content", "loc"), [c[1:] for c in ENCODE_BAD], ids=[c[0] for c in ENCODE_BAD])
def test_bad_encode_bodies_are_422_naming_the_field(alice: httpx.Client, content: bytes, loc: list[Any]) -> None:
    names(post_raw(alice, "/encode", content), 422, loc=loc)


def test_a_ttl_over_max_ttl_s_names_the_limit(alice: httpx.Client) -> None:
    max_ttl = 30 * 24 * 3600
    body = {"facts": ["Bob is kind."], "ttl_s": max_ttl + 1}
    names(alice.post("/encode", json=body), 422, loc=["body", "ttl_s"], text=str(max_ttl))


def test_json_sent_without_a_json_content_type_says_so(alice: httpx.Client) -> None:
    response = alice.post("/encode", content=b'{"facts": ["Bob is kind."]}', headers={"content-type": "text/plain"})
    names(response, 422, text="Content-Type")


def test_control_character_errors_name_the_code_point(alice: httpx.Client) -> None:
    names(alice.post("/encode", json={"facts": ["Bob\x1b is kind."]}), 422, text="U+001B")
    names(alice.post("/encode", json={"facts": ["Bob\x85 is kind."]}), 422, text="U+0085")


def ask_bad(kid: str) -> list[tuple[str, dict[str, Any], list[Any]]]:
    return [
        ("id missing", {"question": "Bob?"}, ["body", "knowledge_id"]),
        ("id a number", {"knowledge_id": 123, "question": "Bob?"}, ["body", "knowledge_id"]),
        ("id not hex", {"knowledge_id": "z" * 64, "question": "Bob?"}, ["body", "knowledge_id"]),
        ("id upper case", {"knowledge_id": kid.upper(), "question": "Bob?"}, ["body", "knowledge_id"]),
        ("id too long", {"knowledge_id": kid * 80, "question": "Bob?"}, ["body", "knowledge_id"]),
        ("no question", {"knowledge_id": kid}, ["body"]),
        ("both question fields", {"knowledge_id": kid, "question": "a", "questions": ["b"]}, ["body"]),
        ("empty question", {"knowledge_id": kid, "question": ""}, ["body", "question"]),
        ("blank question", {"knowledge_id": kid, "question": "\u2003 "}, ["body", "question"]),
        ("NUL question", {"knowledge_id": kid, "questions": ["ok", "b", "c\x00"]}, ["body", "questions", 2]),
        ("empty questions", {"knowledge_id": kid, "questions": []}, ["body", "questions"]),
        ("question a list", {"knowledge_id": kid, "question": ["Bob?"]}, ["body", "question"]),
        ("questions a string", {"knowledge_id": kid, "questions": "Bob?"}, ["body", "questions"]),
        ("choices a string", {"knowledge_id": kid, "question": "Bob?", "choices": "True"}, ["body", "choices"]),
        ("empty choices", {"knowledge_id": kid, "question": "Bob?", "choices": []}, ["body", "choices"]),
        ("duplicate choices", {"knowledge_id": kid, "question": "Bob?", "choices": ["a", "a"]}, ["body"]),
        ("blank choice", {"knowledge_id": kid, "question": "Bob?", "choices": ["a", " "]}, ["body", "choices", 1]),
        ("tokens zero", {"knowledge_id": kid, "question": "Bob?", "max_new_tokens": 0}, ["body", "max_new_tokens"]),
        ("tokens a string", {"knowledge_id": kid, "question": "Q", "max_new_tokens": "4"}, ["body", "max_new_tokens"]),
        ("tokens a bool", {"knowledge_id": kid, "question": "Q", "max_new_tokens": True}, ["body", "max_new_tokens"]),
        ("unknown field", {"knowledge_id": kid, "question": "Bob?", "context": "x"}, ["body", "context"]),
    ]


ASK_BAD_IDS = [c[0] for c in ask_bad("0" * 64)]


@pytest.mark.parametrize("case", ASK_BAD_IDS)
def test_bad_ask_bodies_are_422_naming_the_field(alice: httpx.Client, kid: str, case: str) -> None:
    _, body, loc = next(c for c in ask_bad(kid) if c[0] == case)
    names(alice.post("/ask", json=body), 422, loc=loc)


@pytest.mark.parametrize(
    ("method", "path", "loc"),
    [
        ("GET", "/knowledge/not-an-id", ["path", "knowledge_id"]),
        ("DELETE", "/knowledge/" + "A" * 64, ["path", "knowledge_id"]),
        ("GET", "/knowledge/" + "0" * 5000, ["path", "knowledge_id"]),
        ("GET", "/knowledge/%F0%9F%98%80", ["path", "knowledge_id"]),
        ("GET", "/knowledge/" + "0" * 64 + "?include_facts=maybe", ["query", "include_facts"]),
    ],
    ids=["not hex", "upper case", "5000 chars", "emoji", "bad bool query"],
)
def test_bad_paths_and_queries_are_422_naming_the_parameter(
    alice: httpx.Client, method: str, path: str, loc: list[Any]
) -> None:
    names(alice.request(method, path), 422, loc=loc)


# ----------------------------------------------------------------------------- accepted on purpose


def test_duplicate_facts_are_deduplicated_not_refused(alice: httpx.Client) -> None:
    # Decision (documented on /encode): a knowledge set is a *set*; duplicates, order and whitespace
    # are normalised away, so the same knowledge always has the same id and encode stays idempotent.
    tag = f"dup{time.monotonic_ns()}"
    anne, bob = f"Anne {tag} is kind.", f"Bob {tag} is big."
    noisy = [anne, bob, anne, f"  Anne   {tag}\tis kind. ", bob]
    clean = alice.post("/encode", json={"facts": [bob, anne]})
    assert clean.status_code == 200, clean.text
    again = alice.post("/encode", json={"facts": noisy})
    assert again.status_code == 200, again.text
    assert again.json()["knowledge_id"] == clean.json()["knowledge_id"]
    assert again.json()["n_facts"] == 2 and again.json()["cached"] is True
    info = alice.get(f"/knowledge/{clean.json()['knowledge_id']}", params={"include_facts": "true"}).json()
    assert info["facts"] == sorted([anne, bob])


def test_duplicate_questions_are_each_answered(alice: httpx.Client, kid: str) -> None:
    response = alice.post("/ask", json={"knowledge_id": kid, "questions": ["Bob is kind."] * 3})
    assert response.status_code == 200, response.text
    answers = response.json()["answers"]
    assert len(answers) == 3 and answers[0] == answers[1] == answers[2]


# Each within the tiny model's 62 tokens of a fact (byte-level BPE: astral letters are 4 tokens each), or the
# service refuses it as too long to encode (test_a_fact_with_more_tokens_than_the_model_encodes...).
UNUSUAL = [
    "Zoë 👩‍👩‍👧‍👦 is kind.",  # ZWJ emoji sequence
    "שלום\u200f is red.",  # Hebrew with a right-to-left mark
    "مرحبا is big.",
    "Ⅻ ｆｕｌｌｗｉｄｔｈ is kind.",  # compatibility letters
    "𝐁𝐨𝐛 is 𝓻𝓸𝓾𝓷𝓭.",  # astral-plane letters
    "Z̴̡̛a̷l̸g̵o is cold.",  # stacked combining marks
    "Caf\u0065\u0301 is open.",  # decomposed: stored NFC-composed
    "Bob\u00a0is\u2028kind.",  # NBSP and LINE SEPARATOR collapse to spaces
    "\ufeffBOM\u200b is kind.",
    "A private use \ue000 and a noncharacter \uffff.",
]


def test_unusual_unicode_is_accepted_normalised_and_answerable(alice: httpx.Client) -> None:
    tag = f"uni{time.monotonic_ns()}"
    facts = [f"{fact} {tag}" for fact in UNUSUAL]
    response = alice.post("/encode", json={"facts": facts})
    assert response.status_code == 200, response.text
    kid = response.json()["knowledge_id"]
    stored = alice.get(f"/knowledge/{kid}", params={"include_facts": "true"}).json()["facts"]
    expected = sorted({" ".join(unicodedata.normalize("NFC", f).split()) for f in facts})
    assert stored == expected
    assert "Caf\u00e9 is open. " + tag in stored and f"Bob is kind. {tag}" in stored
    questions = ["Is 👩‍👩‍👧‍👦 kind?", "שלום is red?", "Z̴̡̛a̷l̸g̵o?"]
    asked = alice.post("/ask", json={"knowledge_id": kid, "questions": questions})
    assert asked.status_code == 200 and check_answers(asked.json(), questions) is None, asked.text
    scored = alice.post("/ask", json={"knowledge_id": kid, "question": "Bob?", "choices": ["✓", "✗", "🤷"]})
    assert scored.status_code == 200, scored.text
    assert set(scored.json()["answers"][0]["scores"]) == {"✓", "✗", "🤷"}

