"""API keys and tenant isolation over real HTTP: another tenant's id is indistinguishable from an unknown one."""

import secrets

import httpx
import pytest

from tests.support import unique_facts

PROTECTED = [
    ("POST", "/encode", {"facts": ["Bob is kind."]}),
    ("POST", "/ask", {"knowledge_id": "a" * 64, "question": "Bob is kind."}),
    ("GET", "/knowledge/" + "a" * 64, None),
    ("DELETE", "/knowledge/" + "a" * 64, None),
]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_protected_routes_need_a_valid_key(
    anonymous: httpx.Client, method: str, path: str, body: dict[str, object] | None
) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-key"}, {"Authorization": "Basic YWxpY2U6eA=="}):
        response = anonymous.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "API key" in response.json()["detail"]


def test_health_readiness_and_metrics_are_open(anonymous: httpx.Client) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert anonymous.get(path).status_code == 200, path


def test_a_tenant_cannot_read_ask_or_delete_another_tenants_knowledge(
    alice: httpx.Client, bob: httpx.Client
) -> None:
    facts = unique_facts("isolation")
    kid = alice.post("/encode", json={"facts": facts}).json()["knowledge_id"]
    unknown = secrets.token_hex(32)

    for make in (
        lambda k: ("GET", f"/knowledge/{k}", None),
        lambda k: ("POST", "/ask", {"knowledge_id": k, "question": "Bob is kind."}),
        lambda k: ("DELETE", f"/knowledge/{k}", None),
    ):
        method, path, body = make(kid)
        theirs = bob.request(method, path, json=body)
        method, path, body = make(unknown)
        missing = bob.request(method, path, json=body)
        # Same status, same body, same headers that matter: bob cannot tell the id exists.
        assert theirs.status_code == missing.status_code == 404
        assert theirs.content == missing.content
        assert theirs.headers.get("content-type") == missing.headers.get("content-type")

    # Alice still has everything.
    assert alice.get(f"/knowledge/{kid}").json()["delta_cached"] is True
    assert alice.post("/ask", json={"knowledge_id": kid, "question": "Bob is kind."}).status_code == 200


def test_the_same_facts_are_encoded_separately_per_tenant(alice: httpx.Client, bob: httpx.Client) -> None:
    facts = unique_facts("per-tenant")
    mine = alice.post("/encode", json={"facts": facts}).json()
    theirs = bob.post("/encode", json={"facts": facts}).json()
    # Content addressing gives the same id, but bob's encode is not a cache hit on alice's data:
    # `cached` would otherwise tell bob that someone else encoded these facts.
    assert theirs["knowledge_id"] == mine["knowledge_id"]
    assert theirs["cached"] is False
    assert bob.delete(f"/knowledge/{theirs['knowledge_id']}").status_code == 204
    assert alice.get(f"/knowledge/{mine['knowledge_id']}").status_code == 200
