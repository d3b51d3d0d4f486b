"""create_app(settings): the FastAPI app, its lifespan (model + store), routers, error handlers, /metrics."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from service import preflight
from service.api import ask, encode, health, knowledge_sets, playground
from service.api.disconnect import ClientGone
from service.api.errors import UNKNOWN_KNOWLEDGE_DETAIL
from service.auth import ApiKeyAuth
from service.engine import AskTooLarge, EncodeQueueFull, Engine, FactTooLong, InputTooLong
from service.integrity import ForgedRecord, Signer
from service.knowledge_service import EmptyFactSet, KnowledgeService, UnknownKnowledge
from service.memory_budget import auto_weight_cache_bytes, memory_limit_bytes
from service.metrics import STORE_UNAVAILABLE, THROTTLED, metrics_app, record_eviction
from service.middleware import BodyLimitMiddleware, RequestMetricsMiddleware
from service.rate_limit import RateLimited, TenantRateLimits
from service.secret import resolve_secret
from service.settings import Settings
from service.store import KnowledgeStore, Quota, QuotaExceeded, StoreUnavailable, UnreadableRecord, build_store

log = logging.getLogger("service")


def weight_cache_bytes(settings: Settings) -> int:
    """RECKONING_WEIGHT_CACHE_BYTES, or (unset) the memory-sized default of service.memory_budget."""
    if settings.weight_cache_bytes is not None:
        log.info("weight cache: %d MiB (RECKONING_WEIGHT_CACHE_BYTES)", settings.weight_cache_bytes >> 20)
        return settings.weight_cache_bytes
    limit = memory_limit_bytes()
    chosen = auto_weight_cache_bytes(limit)
    log.info("weight cache: %d MiB, sized from the %d MiB this process may use", chosen >> 20, limit >> 20)
    return chosen


# How long shutdown waits for (re-)encodes in flight to store their result before closing the engine.
DRAIN_TIMEOUT_S = 10.0

DESCRIPTION = """\
Encode a set of facts once into fast weights (`POST /encode`), then answer any number of
questions about it without the facts in the prompt (`POST /ask`).

Facts are stored durably; the encoded delta is a cache that may expire and is rebuilt from the
facts when needed. With API keys configured, send `Authorization: Bearer <key>`; each key sees only
its own tenant's knowledge sets.
"""


def _version() -> str:
    try:
        return metadata.version("reckoning")
    except metadata.PackageNotFoundError:
        return "0.0.0"


_FASTAPI_BODY_PARSE_ERROR = "There was an error parsing the body"


def _validation_detail(errors: Any) -> list[dict[str, Any]]:
    # Drop `input`/`ctx`: echoing a 2 MB body back, or non-JSON exception objects, helps nobody.
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors]


def _install_error_handlers(app: FastAPI, settings: Settings) -> None:
    retry_after = {"Retry-After": str(settings.retry_after_s)}

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = _validation_detail(exc.errors())
        if "json" not in request.headers.get("content-type", "") and any(e["loc"] == ["body"] for e in detail):
            # FastAPI only parses JSON bodies sent as JSON; say so instead of a puzzling type error.
            detail.append(
                {"loc": ["header", "content-type"], "msg": "send Content-Type: application/json", "type": "header"}
            )
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and exc.detail == _FASTAPI_BODY_PARSE_ERROR:
            # FastAPI's answer to a body that is not even UTF-8: make it the same 422 as any bad JSON.
            detail = [{"loc": ["body"], "msg": "body is not valid UTF-8 JSON", "type": "json_invalid"}]
            return JSONResponse({"detail": detail}, status_code=422)
        return await http_exception_handler(request, exc)

    @app.exception_handler(EmptyFactSet)
    async def on_empty(_: Request, exc: EmptyFactSet) -> JSONResponse:
        detail = [{"loc": ["body", "facts"], "msg": str(exc), "type": "empty_fact_set"}]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(InputTooLong)
    async def on_too_long(request: Request, exc: InputTooLong) -> JSONResponse:
        body = getattr(request.state, "question_field", "questions")
        loc: list[str | int] = ["body", "question"] if body == "question" else ["body", "questions", exc.index]
        return JSONResponse({"detail": [{"loc": loc, "msg": str(exc), "type": "context_exceeded"}]}, status_code=422)

    @app.exception_handler(FactTooLong)
    async def on_fact_too_long(_: Request, exc: FactTooLong) -> JSONResponse:
        detail = [{"loc": ["body", "facts", exc.index], "msg": str(exc), "type": "fact_too_long"}]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(AskTooLarge)
    async def on_ask_too_large(request: Request, exc: AskTooLarge) -> JSONResponse:
        field = getattr(request.state, "question_field", "questions")
        detail = [{"loc": ["body", field], "msg": str(exc), "type": "ask_too_large"}]
        return JSONResponse({"detail": detail}, status_code=413)

    @app.exception_handler(EncodeQueueFull)
    async def on_queue_full(_: Request, exc: EncodeQueueFull) -> JSONResponse:
        THROTTLED.labels(reason="encode_queue_full").inc()
        headers = {"Retry-After": str(exc.retry_after_s)}
        return JSONResponse({"detail": str(exc)}, status_code=429, headers=headers)

    @app.exception_handler(RateLimited)
    async def on_rate_limited(_: Request, exc: RateLimited) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=429, headers={"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(QuotaExceeded)
    async def on_quota(_: Request, exc: QuotaExceeded) -> JSONResponse:
        THROTTLED.labels(reason=exc.limit_name).inc()
        return JSONResponse({"detail": str(exc)}, status_code=403)

    @app.exception_handler(ForgedRecord)
    async def on_forged_record(_: Request, exc: ForgedRecord) -> JSONResponse:
        detail = f"{exc}; it was not used. Delete the knowledge set and encode its facts again."
        return JSONResponse({"detail": detail}, status_code=409)

    @app.exception_handler(ClientGone)
    async def on_client_gone(_: Request, __: ClientGone) -> Response:
        return Response(status_code=499)  # nobody reads it; counted in reckoning_requests_total as 499

    @app.exception_handler(UnknownKnowledge)
    async def on_unknown(_: Request, __: UnknownKnowledge) -> JSONResponse:
        # The same body for "never existed" and "another tenant's": ids must not be probeable.
        return JSONResponse({"detail": UNKNOWN_KNOWLEDGE_DETAIL}, status_code=404)

    @app.exception_handler(StoreUnavailable)
    async def on_store_down(_: Request, exc: StoreUnavailable) -> JSONResponse:
        STORE_UNAVAILABLE.inc()
        log.warning("store unavailable: %s (%s)", exc, exc.__cause__)
        return JSONResponse(
            {"detail": f"knowledge store unavailable ({exc}), retry later"}, status_code=503, headers=retry_after
        )

    @app.exception_handler(UnreadableRecord)
    async def on_unreadable(_: Request, exc: UnreadableRecord) -> JSONResponse:
        # Not retryable and not the caller's fault: say what is wrong with the stored record (e.g. written by a
        # newer server during a rolling deploy). 409: the stored state conflicts with this server, and (unlike a
        # 500) it is an answer, not a crash.
        log.error("unreadable knowledge record: %s", exc)
        return JSONResponse({"detail": f"stored knowledge record is unreadable: {exc}"}, status_code=409)

    @app.exception_handler(Exception)
    async def on_crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse({"detail": "internal server error"}, status_code=500)


def _configure_logging(level: str) -> None:
    # uvicorn configures only its own loggers; without this our INFO lines would be dropped.
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
    log.setLevel(level.upper())


async def shutdown(knowledge: KnowledgeService, engine: Engine, store: KnowledgeStore) -> None:
    """Drain the calls and (re-)encodes in flight (so what they made is stored), then close the engine, then the
    store (uvicorn has stopped taking requests and waited for open ones by then; this also covers what it cut)."""
    unfinished = await knowledge.drain(DRAIN_TIMEOUT_S)
    if unfinished:
        log.warning("shutdown: %d encode(s) still running after %.0f s were cancelled", unfinished, DRAIN_TIMEOUT_S)
    await asyncio.to_thread(engine.close)
    await store.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the model and the store are created in the lifespan, once per process.

    StartupRefused (before anything loads) for settings that would serve insecurely (service.preflight)."""
    settings = settings or Settings()
    _configure_logging(settings.log_level)
    preflight.check(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        signer = Signer(resolve_secret(settings))
        engine = await asyncio.to_thread(
            Engine.load,
            settings.model_dir,
            torch_threads=settings.torch_threads,
            max_concurrent_encodes=settings.max_concurrent_encodes,
            delta_dtype=settings.delta_dtype,
            delta_rank=settings.delta_rank,
            load_workers=settings.load_workers,
            device=settings.device,
            inner_autocast=settings.inner_autocast,
            max_pending_encodes=settings.max_pending_encodes,
            max_ask_tokens=settings.max_ask_tokens,
        )
        store = build_store(settings, model=engine.fingerprint, on_evict=record_eviction)
        knowledge = KnowledgeService(
            engine,
            store,
            signer,
            default_ttl_s=settings.delta_ttl_s,
            weight_cache_bytes=weight_cache_bytes(settings),
            quota=Quota(settings.tenant_max_knowledge_sets, settings.tenant_max_bytes),
        )
        app.state.engine = engine
        app.state.store = store
        app.state.knowledge = knowledge
        app.state.rate_limits = TenantRateLimits(settings)
        log.info("serving %s with the %s store", engine.model_name, store.kind)
        try:
            yield
        finally:
            await shutdown(knowledge, engine, store)

    app = FastAPI(title="reckoning", version=_version(), description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.auth = ApiKeyAuth(settings.api_keys)

    app.include_router(health.router)
    app.include_router(encode.build_router(settings))
    app.include_router(ask.build_router(settings))
    app.include_router(knowledge_sets.router)
    app.include_router(playground.router)
    # A Route, not a Mount: a Mount would answer "/metrics" with a 307 to "/metrics/".
    app.router.routes.append(Route("/metrics", _AsgiEndpoint(metrics_app()), include_in_schema=False))

    _install_error_handlers(app, settings)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetricsMiddleware)  # outermost: counts 413s and 500s too
    return app


class _AsgiEndpoint:
    """Wraps an ASGI function so Starlette's Route serves it as an app, not as a request handler."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
