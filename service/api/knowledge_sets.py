"""GET/DELETE /knowledge/{knowledge_id}: metadata of a knowledge set, and forgetting it."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from service.api.deps import KnowledgeDep, TenantDep
from service.api.errors import COMMON, NOT_FOUND
from service.schemas import KNOWLEDGE_ID_PATTERN, KnowledgeInfo

router = APIRouter(prefix="/knowledge", tags=["knowledge"])

KnowledgeIdPath = Annotated[str, Path(pattern=KNOWLEDGE_ID_PATTERN, description="As returned by /encode.")]


@router.get(
    "/{knowledge_id}",
    response_model=KnowledgeInfo,
    summary="Metadata of a knowledge set",
    responses={**COMMON, **NOT_FOUND},
)
async def get_knowledge(
    knowledge_id: KnowledgeIdPath,
    knowledge: KnowledgeDep,
    tenant: TenantDep,
    include_facts: Annotated[bool, Query(description="Also return the normalised facts.")] = False,
) -> KnowledgeInfo:
    record, delta = await knowledge.info(tenant, knowledge_id)
    return KnowledgeInfo(
        knowledge_id=record.knowledge_id,
        n_facts=record.n_facts,
        created=datetime.fromtimestamp(record.created, tz=UTC),
        model=record.model,
        fingerprint=record.fingerprint,
        delta_cached=delta.cached,
        ttl_s=None if delta.ttl_s is None else round(delta.ttl_s, 3),
        delta_bytes=record.delta_bytes,
        recall=record.recall,
        final_inner_loss=record.final_inner_loss,
        facts=record.facts if include_facts else None,
    )


@router.delete(
    "/{knowledge_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Forget a knowledge set (facts and delta)",
    responses={**COMMON, **NOT_FOUND},
)
async def delete_knowledge(knowledge_id: KnowledgeIdPath, knowledge: KnowledgeDep, tenant: TenantDep) -> Response:
    await knowledge.delete(tenant, knowledge_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
