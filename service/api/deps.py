"""FastAPI dependencies (Annotated aliases) shared by the routers."""

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.auth import ApiKeyAuth
from service.knowledge_service import KnowledgeService
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


SettingsDep = Annotated[Settings, Depends(app_settings)]
KnowledgeDep = Annotated[KnowledgeService, Depends(get_knowledge)]
TenantDep = Annotated[str, Depends(get_tenant)]
