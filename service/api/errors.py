"""Error responses shared by routers: every error body is {"detail": ...} naming the field or limit."""

from typing import Any

from service.schemas import ErrorResponse

UNKNOWN_KNOWLEDGE_DETAIL = "unknown knowledge_id"

_VALIDATION = {"model": ErrorResponse, "description": "Invalid request: the detail names the field and the limit."}
_UNAVAILABLE = {"model": ErrorResponse, "description": "Knowledge store unreachable; retry after Retry-After seconds."}
_UNAUTHORIZED = {"model": ErrorResponse, "description": "Missing or invalid API key."}

COMMON: dict[int | str, dict[str, Any]] = {401: _UNAUTHORIZED, 422: _VALIDATION, 503: _UNAVAILABLE}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Unknown knowledge id (or another tenant's)."}
}
TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse, "description": "Body over max_body_bytes."}
}
