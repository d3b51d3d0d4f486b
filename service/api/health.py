"""GET /healthz (the process is up) and GET /readyz (model loaded and store reachable, else 503)."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.schemas import Health, Ready
from service.store import StoreUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Ready,
    summary="Model loaded and store reachable",
    responses={503: {"model": Ready, "description": "Not ready; see detail."}},
)
async def readyz(request: Request) -> Ready | JSONResponse:
    state = request.app.state
    engine = getattr(state, "engine", None)
    if engine is None:
        return _not_ready(request, Ready(status="unavailable", detail="model not loaded"))
    ready = Ready(
        status="ready",
        model=engine.model_name,
        fingerprint=engine.fingerprint,
        labels=engine.labels,
        store=state.store.kind,
    )
    try:
        await state.store.ping()
    except StoreUnavailable as exc:
        ready.status, ready.detail = "unavailable", f"store unreachable: {exc}"
        return _not_ready(request, ready)
    return ready


def _not_ready(request: Request, body: Ready) -> JSONResponse:
    retry_after = str(request.app.state.settings.retry_after_s)
    return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": retry_after})
