"""Python clients of the HTTP API (sync and async, over httpx)."""

import os
from collections.abc import Sequence
from typing import Any, Self

import httpx

from service.schemas import AskResponse, EncodeResponse, KnowledgeInfo

DEFAULT_URL = "http://127.0.0.1:8000"


def default_url() -> str:
    return os.environ.get("RECKONING_URL", DEFAULT_URL)


class ReckoningAPIError(Exception):
    """A non-2xx answer from the server; `detail` is the server's {"detail": ...}."""

    def __init__(self, status_code: int, detail: Any, retry_after: str | None = None) -> None:
        super().__init__(f"HTTP {status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail
        self.retry_after = retry_after


def _headers(api_key: str | None) -> dict[str, str]:
    key = api_key if api_key is not None else os.environ.get("RECKONING_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def _check(response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    raise ReckoningAPIError(response.status_code, detail, response.headers.get("Retry-After"))


def _encode_body(facts: Sequence[str], ttl_s: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"facts": list(facts)}
    if ttl_s is not None:
        body["ttl_s"] = ttl_s
    return body


def _ask_body(
    knowledge_id: str,
    questions: str | Sequence[str],
    choices: Sequence[str] | None,
    max_new_tokens: int | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"knowledge_id": knowledge_id}
    if isinstance(questions, str):
        body["question"] = questions
    else:
        body["questions"] = list(questions)
    if choices is not None:
        body["choices"] = list(choices)
    if max_new_tokens is not None:
        body["max_new_tokens"] = max_new_tokens
    return body


class ReckoningClient:
    """Blocking client: `encode()` facts once, `ask()` many questions, `get()`/`delete()` knowledge sets."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url or default_url(), headers=_headers(api_key), timeout=timeout, transport=transport
        )

    def encode(self, facts: Sequence[str], *, ttl_s: int | None = None) -> EncodeResponse:
        response = _check(self._http.post("/encode", json=_encode_body(facts, ttl_s)))
        return EncodeResponse.model_validate(response.json())

    def ask(
        self,
        knowledge_id: str,
        questions: str | Sequence[str],
        *,
        choices: Sequence[str] | None = None,
        max_new_tokens: int | None = None,
    ) -> AskResponse:
        body = _ask_body(knowledge_id, questions, choices, max_new_tokens)
        return AskResponse.model_validate(_check(self._http.post("/ask", json=body)).json())

    def get(self, knowledge_id: str, *, include_facts: bool = False) -> KnowledgeInfo:
        params = {"include_facts": "true"} if include_facts else None
        response = _check(self._http.get(f"/knowledge/{knowledge_id}", params=params))
        return KnowledgeInfo.model_validate(response.json())

    def delete(self, knowledge_id: str) -> None:
        _check(self._http.delete(f"/knowledge/{knowledge_id}"))

    def ready(self) -> dict[str, Any]:
        payload: dict[str, Any] = _check(self._http.get("/readyz")).json()
        return payload

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncReckoningClient:
    """The same API for asyncio code (load generators, other services)."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url or default_url(), headers=_headers(api_key), timeout=timeout, transport=transport
        )

    async def encode(self, facts: Sequence[str], *, ttl_s: int | None = None) -> EncodeResponse:
        response = _check(await self._http.post("/encode", json=_encode_body(facts, ttl_s)))
        return EncodeResponse.model_validate(response.json())

    async def ask(
        self,
        knowledge_id: str,
        questions: str | Sequence[str],
        *,
        choices: Sequence[str] | None = None,
        max_new_tokens: int | None = None,
    ) -> AskResponse:
        body = _ask_body(knowledge_id, questions, choices, max_new_tokens)
        return AskResponse.model_validate(_check(await self._http.post("/ask", json=body)).json())

    async def get(self, knowledge_id: str, *, include_facts: bool = False) -> KnowledgeInfo:
        params = {"include_facts": "true"} if include_facts else None
        response = _check(await self._http.get(f"/knowledge/{knowledge_id}", params=params))
        return KnowledgeInfo.model_validate(response.json())

    async def delete(self, knowledge_id: str) -> None:
        _check(await self._http.delete(f"/knowledge/{knowledge_id}"))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
