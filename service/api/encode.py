"""POST /encode: facts in, knowledge id out (idempotent)."""

from typing import cast

from fastapi import APIRouter, Request

from service.api.deps import EncodeTenantDep, KnowledgeDep
from service.api.disconnect import until_disconnected
from service.api.errors import COMMON, QUOTA, TOO_LARGE
from service.schemas import EncodeRequestBase, EncodeResponse, request_models
from service.settings import Settings


def build_router(settings: Settings) -> APIRouter:
    encode_request, _ = request_models(settings)
    router = APIRouter(tags=["encode"])

    @router.post(
        "/encode",
        response_model=EncodeResponse,
        summary="Encode a knowledge set into fast weights",
        description=(
            "Runs the inner loop on the facts and caches the resulting delta. The same fact set "
            "(order, duplicates and whitespace ignored) always gives the same id; a set already "
            "encoded answers `cached: true` without running the inner loop. A fact with more tokens than the "
            "model encodes is a 422 naming it; a full encode queue is a 429 with Retry-After."
        ),
        responses={**COMMON, **TOO_LARGE, **QUOTA},
    )
    async def encode(
        body: encode_request,  # type: ignore[valid-type]
        http: Request,
        knowledge: KnowledgeDep,
        tenant: EncodeTenantDep,
    ) -> EncodeResponse:
        request = cast(EncodeRequestBase, body)
        outcome = await until_disconnected(http, knowledge.encode(tenant, request.facts, request.ttl_s))
        record = outcome.record
        return EncodeResponse(
            knowledge_id=record.knowledge_id,
            n_facts=record.n_facts,
            cached=outcome.cached,
            encode_ms=round(outcome.encode_ms, 3),
            delta_bytes=record.delta_bytes,
            model=record.model,
            recall=record.recall,
        )

    return router
