"""FastAPI dependencies (Annotated aliases) shared by the routers."""

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.auth import ApiKeyAuth
from service.knowledge_service import KnowledgeService
from service.rate_limit import TenantRateLimits
from service.settings import Settings

_bearer = HTTPBearer(
    auto_error=False,
    description="An API key from RECKONING_API_KEYS; required only when keys are configured.",
)


def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_knowledge(request: Request) -> KnowledgeService:
    service: KnowledgeService = request.app.state.knowledge
    return service


def get_tenant(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The caller's namespace; 401 when keys are configured and none of them was presented."""
    auth: ApiKeyAuth = request.app.state.auth
    tenant = auth.tenant_for(credentials.credentials if credentials else None)
    if tenant is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid API key (Authorization: Bearer <key>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return tenant


async def limited_tenant(request: Request, tenant: Annotated[str, Depends(get_tenant)]) -> str:
    """The caller's namespace, once its request is within the tenant's rate limit (else 429)."""
    limits: TenantRateLimits = request.app.state.rate_limits
    await limits.request(tenant)
    return tenant


async def encoding_tenant(request: Request, tenant: Annotated[str, Depends(limited_tenant)]) -> str:
    """The caller's namespace, once this encode is also within the tenant's encode rate limit (else 429)."""
    limits: TenantRateLimits = request.app.state.rate_limits
    await limits.encode(tenant)
    return tenant


SettingsDep = Annotated[Settings, Depends(app_settings)]
KnowledgeDep = Annotated[KnowledgeService, Depends(get_knowledge)]
TenantDep = Annotated[str, Depends(limited_tenant)]
EncodeTenantDep = Annotated[str, Depends(encoding_tenant)]
