"""Every request limit over real HTTP: 413 for the byte limit, 422 naming the field and the limit otherwise."""

import json

import httpx
import pytest

from benchmarks.processes import metric
from tests.support import chunked_facts_body, unique_facts

# The redis_api server runs with conftest.SMALL_LIMITS.
MAX_BODY = 8192


@pytest.fixture(scope="module")
def kid(redis_api: object) -> str:
    from benchmarks.processes import ApiProcess

    assert isinstance(redis_api, ApiProcess)
    with redis_api.client(tenant="alice") as client:
        response = client.post("/encode", json={"facts": unique_facts("limits")})
        assert response.status_code == 200, response.text
        knowledge_id: str = response.json()["knowledge_id"]
        return knowledge_id


def only_error(response: httpx.Response, status: int = 422) -> dict[str, object]:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list) and len(detail) >= 1, detail
    first: dict[str, object] = detail[0]
    return first


@pytest.mark.parametrize(
    ("body", "loc", "limit"),
    [
        ({"facts": [f"Fact number {i}." for i in range(9)]}, ["body", "facts"], "max_facts=8"),
        ({"facts": ["x" * 201]}, ["body", "facts", 0], "max_fact_chars=200"),
        ({"facts": ["ok.", "y" * 201]}, ["body", "facts", 1], "max_fact_chars=200"),
    ],
)
def test_encode_limits(alice: httpx.Client, body: dict[str, object], loc: list[object], limit: str) -> None:
    error = only_error(alice.post("/encode", json=body))
    assert error["loc"] == loc
    assert limit in str(error["msg"])


def test_ttl_limit(alice: httpx.Client) -> None:
    error = only_error(alice.post("/encode", json={"facts": ["Bob is kind."], "ttl_s": 3601}))
    assert error["loc"] == ["body", "ttl_s"]
    assert "3600" in str(error["msg"])
    assert only_error(alice.post("/encode", json={"facts": ["Bob is kind."], "ttl_s": 0}))["loc"] == ["body", "ttl_s"]


@pytest.mark.parametrize(
    ("extra", "loc", "limit"),
    [
        ({"questions": ["Bob is kind."] * 5}, ["body", "questions"], "max_questions=4"),
        ({"question": "q" * 201}, ["body", "question"], "max_question_chars=200"),
        ({"questions": ["fine", "q" * 201]}, ["body", "questions", 1], "max_question_chars=200"),
        ({"question": "Bob?", "choices": ["a", "b", "c", "d", "e"]}, ["body", "choices"], "max_choices=4"),
        ({"question": "Bob?", "choices": ["a", "b" * 21]}, ["body", "choices", 1], "max_choice_chars=20"),
        ({"question": "Bob?", "max_new_tokens": 9}, ["body", "max_new_tokens"], "8"),
    ],
)
def test_ask_limits(alice: httpx.Client, kid: str, extra: dict[str, object], loc: list[object], limit: str) -> None:
    error = only_error(alice.post("/ask", json={"knowledge_id": kid, **extra}))
    assert error["loc"] == loc
    assert limit in str(error["msg"])


def test_question_longer_than_the_model_context_is_422(alice: httpx.Client, kid: str) -> None:
    # 200 CJK characters pass max_question_chars but need ~600 byte tokens: the tiny model has 256 positions.
    error = only_error(alice.post("/ask", json={"knowledge_id": kid, "questions": ["ok", "中" * 200]}))
    assert error["loc"] == ["body", "questions", 1]
    assert "context" in str(error["msg"])


def test_a_fact_with_more_tokens_than_the_model_encodes_is_422_naming_it_and_the_limit(alice: httpx.Client) -> None:
    # 150 'v's pass max_fact_chars=200 but are ~150 byte tokens; the tiny model encodes 62 tokens of a fact
    # (max_fact_tokens=64 less <bos> and <eos>): the rest would have been cut without a word.
    loops = metric(alice, "reckoning_encode_seconds_count")
    error = only_error(alice.post("/encode", json={"facts": ["Bob is kind.", "v" * 150]}))
    assert error["loc"] == ["body", "facts", 1]
    assert error["type"] == "fact_too_long"
    assert "fact 1 has" in str(error["msg"]) and "at most 62 tokens" in str(error["msg"])
    assert metric(alice, "reckoning_encode_seconds_count") == loops  # refused before any inner loop


def test_an_ask_over_max_ask_tokens_is_413_saying_so(alice: httpx.Client, kid: str) -> None:
    # conftest.SMALL_LIMITS sets max_ask_tokens=600: 4 questions x 4 choices of these lengths need more.
    body = {"knowledge_id": kid, "questions": ["Bob is blue and kind and round. " * 4] * 4,
            "choices": ["blue and round", "kind and nice", "big and cold", "young and red"]}  # fmt: skip
    asks = metric(alice, "reckoning_ask_seconds_count")
    error = only_error(alice.post("/ask", json=body), status=413)
    assert error["loc"] == ["body", "questions"] and error["type"] == "ask_too_large"
    assert "max_ask_tokens=600" in str(error["msg"]) and "4 question(s) x 4 choice(s)" in str(error["msg"])
    assert metric(alice, "reckoning_ask_seconds_count") == asks
    # The same questions one at a time fit.
    one = alice.post("/ask", json={**body, "questions": body["questions"][:1]})
    assert one.status_code == 200, one.text


def test_body_over_the_byte_limit_by_content_length_is_413(alice: httpx.Client) -> None:
    body = json.dumps({"facts": ["z" * 150] * 60}).encode()
    assert len(body) > MAX_BODY
    counted = metric(alice, "reckoning_requests_total", route="/encode", status="413")
    response = alice.post("/encode", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert f"max_body_bytes={MAX_BODY}" in response.json()["detail"]
    assert metric(alice, "reckoning_requests_total", route="/encode", status="413") == counted + 1


def test_body_over_the_byte_limit_when_streamed_is_413(alice: httpx.Client) -> None:
    # Chunked transfer encoding: no Content-Length, so only counting the bytes received can catch it.
    response = alice.post(
        "/encode", content=chunked_facts_body(100, 100), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "max_body_bytes" in response.json()["detail"]


def test_a_body_just_under_the_limit_is_accepted(alice: httpx.Client) -> None:
    facts = [f"Fact {i} " + "Bob is blue. " * 11 for i in range(8)]  # 150 characters, under 62 tokens each
    body = json.dumps({"facts": facts}).encode()
    assert len(body) < MAX_BODY
    assert alice.post("/encode", content=body, headers={"content-type": "application/json"}).status_code == 200


@pytest.mark.parametrize(
    ("content", "loc_prefix"),
    [
        (b"{not json", ["body"]),
        (b"", ["body"]),
        (b"[]", ["body"]),
        (b'{"facts": "Bob is kind."}', ["body", "facts"]),
        (b'{"facts": [1, 2]}', ["body", "facts", 0]),
        (b'{"facts": []}', ["body", "facts"]),
        (b'{"facts": ["   "]}', ["body", "facts", 0]),
        (b'{"facts": ["Bob\\u0000 is kind."]}', ["body", "facts", 0]),
        (b'{"facts": ["Bob \\ud800 is kind."]}', ["body", "facts", 0]),
        (b'{"facts": ["Bob is kind."], "fact": 1}', ["body", "fact"]),
        (b'{"facts": ["Bob is kind."], "ttl_s": "soon"}', ["body", "ttl_s"]),
        (b"\xff\xfe\x00", ["body"]),
    ],
)
def test_bad_encode_bodies_are_422_naming_the_field(
    alice: httpx.Client, content: bytes, loc_prefix: list[object]
) -> None:
    error = only_error(alice.post("/encode", content=content, headers={"content-type": "application/json"}))
    assert error["loc"][: len(loc_prefix)] == loc_prefix  # type: ignore[index]


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"question": "a", "questions": ["b"]},
        {"question": "a", "choices": ["x", "x"]},
        {"question": "a", "choices": []},
        {"questions": []},
    ],
)
def test_bad_ask_bodies_are_422(alice: httpx.Client, kid: str, extra: dict[str, object]) -> None:
    only_error(alice.post("/ask", json={"knowledge_id": kid, **extra}))


def test_unusual_unicode_is_accepted_and_normalised(alice: httpx.Client) -> None:
    tag = unique_facts("unicode", 1)[0]
    composed = [f"Zoë {tag} is kind 😀.", f"مرحبا {tag} is red.", f"Ω {tag}\tis   big."]
    decomposed = [unicodedata_nfd(f) for f in composed]
    first = alice.post("/encode", json={"facts": composed})
    assert first.status_code == 200, first.text
    second = alice.post("/encode", json={"facts": decomposed}).json()
    assert second["knowledge_id"] == first.json()["knowledge_id"]
    assert second["cached"] is True


def unicodedata_nfd(text: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFD", text)


def test_json_without_json_content_type_says_so(alice: httpx.Client) -> None:
    response = alice.post("/encode", content=b'{"facts": ["Bob is kind."]}', headers={"content-type": "text/plain"})
    assert response.status_code == 422
    assert any("Content-Type" in e["msg"] for e in response.json()["detail"])
