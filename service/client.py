"""Python clients of the HTTP API (sync and async, over httpx): one table of calls, sent blocking or awaited."""

import functools
import inspect
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, Self, TypeVar, overload

import httpx
from pydantic import BaseModel

from service.schemas import AskResponse, EncodeResponse, KnowledgeInfo

DEFAULT_URL = "http://127.0.0.1:8000"

_T = TypeVar("_T")
_P = ParamSpec("_P")
_Schema = TypeVar("_Schema", bound=BaseModel)


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


@dataclass(frozen=True)
class _Call(Generic[_T]):
    """One request of the API and how its answer is read: what both clients send, one blocking, one awaited."""

    method: str
    url: str
    read: Callable[[httpx.Response], _T]
    json: dict[str, Any] | None = None
    params: dict[str, str] | None = None

    def request(self) -> dict[str, Any]:
        return {"method": self.method, "url": self.url, "json": self.json, "params": self.params}


def _nothing(_: httpx.Response) -> None:
    return None


def _model(schema: type[_Schema]) -> Callable[[httpx.Response], _Schema]:
    return lambda response: schema.model_validate(response.json())


def _payload(response: httpx.Response) -> dict[str, Any]:
    payload: dict[str, Any] = response.json()
    return payload


class _Calls:
    """The table of calls: each builds the request of one client method (of the same name) from its arguments."""

    @staticmethod
    def encode(facts: Sequence[str], *, ttl_s: int | None = None) -> _Call[EncodeResponse]:
        """Encode facts once into a knowledge set (the same set always gives the same id)."""
        body: dict[str, Any] = {"facts": list(facts)}
        if ttl_s is not None:
            body["ttl_s"] = ttl_s
        return _Call("POST", "/encode", _model(EncodeResponse), json=body)

    @staticmethod
    def ask(
        knowledge_id: str,
        questions: str | Sequence[str],
        *,
        choices: Sequence[str] | None = None,
        max_new_tokens: int | None = None,
    ) -> _Call[AskResponse]:
        """Ask one question (a str) or several about an encoded knowledge set."""
        body: dict[str, Any] = {"knowledge_id": knowledge_id}
        if isinstance(questions, str):
            body["question"] = questions
        else:
            body["questions"] = list(questions)
        if choices is not None:
            body["choices"] = list(choices)
        if max_new_tokens is not None:
            body["max_new_tokens"] = max_new_tokens
        return _Call("POST", "/ask", _model(AskResponse), json=body)

    @staticmethod
    def get(knowledge_id: str, *, include_facts: bool = False) -> _Call[KnowledgeInfo]:
        """What the server holds about a knowledge set (its facts too with include_facts)."""
        params = {"include_facts": "true"} if include_facts else None
        return _Call("GET", f"/knowledge/{knowledge_id}", _model(KnowledgeInfo), params=params)

    @staticmethod
    def delete(knowledge_id: str) -> _Call[None]:
        """Delete a knowledge set (its facts and its delta)."""
        return _Call("DELETE", f"/knowledge/{knowledge_id}", _nothing)

    @staticmethod
    def ready() -> _Call[dict[str, Any]]:
        """The server's GET /readyz: model, fingerprint and store."""
        return _Call("GET", "/readyz", _payload)


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _as_method(method: _Method, call: Callable[..., Any]) -> _Method:
    """`method` carries the call's name, docstring and signature (with `self` first), for help() and editors."""
    functools.update_wrapper(method, call)
    signature = inspect.signature(call)
    self_parameter = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    parameters = [self_parameter, *signature.parameters.values()]
    with_self = signature.replace(parameters=parameters, return_annotation=inspect.Signature.empty)
    method.__signature__ = with_self  # type: ignore[attr-defined]
    return method


class _Endpoint(Generic[_P, _T]):
    """A method of both clients made from a call of the table: blocking on a ReckoningClient, a coroutine on an
    AsyncReckoningClient (each client's `_send` sends the call its way)."""

    def __init__(self, call: Callable[_P, _Call[_T]]) -> None:
        def blocking(client: "_Client[Any, Any]", /, *args: _P.args, **kwargs: _P.kwargs) -> Any:
            return client._send(call(*args, **kwargs))

        async def awaited(client: "_Client[Any, Any]", /, *args: _P.args, **kwargs: _P.kwargs) -> Any:
            return await client._send(call(*args, **kwargs))

        self._blocking = _as_method(blocking, call)
        self._awaited = _as_method(awaited, call)

    @overload
    def __get__(self, client: None, owner: type) -> Callable[..., Any]: ...
    @overload
    def __get__(self, client: "ReckoningClient", owner: type) -> Callable[_P, _T]: ...
    @overload
    def __get__(self, client: "AsyncReckoningClient", owner: type) -> Callable[_P, Awaitable[_T]]: ...
    def __get__(self, client: "_Client[Any, Any] | None", owner: "type[_Client[Any, Any]]") -> Callable[..., Any]:
        method = self._awaited if inspect.iscoroutinefunction(owner._send) else self._blocking
        bound: Callable[..., Any] = method.__get__(client, owner)
        return bound


_Transport = TypeVar("_Transport", httpx.BaseTransport, httpx.AsyncBaseTransport)
_Http = TypeVar("_Http", httpx.Client, httpx.AsyncClient)


class _Client(Generic[_Transport, _Http]):
    """What both clients share: the connection (base URL or $RECKONING_URL, API key or $RECKONING_API_KEY) and the
    calls."""

    _connect: Callable[..., _Http]  # httpx.Client or httpx.AsyncClient

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        transport: _Transport | None = None,
    ) -> None:
        self._http: _Http = self._connect(
            base_url=base_url or default_url(), headers=_headers(api_key), timeout=timeout, transport=transport
        )

    def _send(self, call: _Call[Any]) -> Any:
        raise NotImplementedError

    encode = _Endpoint(_Calls.encode)
    ask = _Endpoint(_Calls.ask)
    get = _Endpoint(_Calls.get)
    delete = _Endpoint(_Calls.delete)


class ReckoningClient(_Client[httpx.BaseTransport, httpx.Client]):
    """Blocking client: `encode()` facts once, `ask()` many questions, `get()`/`delete()` knowledge sets."""

    _connect = httpx.Client

    def _send(self, call: _Call[_T]) -> _T:
        return call.read(_check(self._http.request(**call.request())))

    ready = _Endpoint(_Calls.ready)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncReckoningClient(_Client[httpx.AsyncBaseTransport, httpx.AsyncClient]):
    """The same API for asyncio code (load generators, other services)."""

    _connect = httpx.AsyncClient

    async def _send(self, call: _Call[_T]) -> _T:
        return call.read(_check(await self._http.request(**call.request())))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
