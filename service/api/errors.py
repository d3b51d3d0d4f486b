"""Error responses shared by routers: every error body is {"detail": ...} naming the field or limit."""

from typing import Any

from service.schemas import ErrorResponse

UNKNOWN_KNOWLEDGE_DETAIL = "unknown knowledge_id"

_VALIDATION = {"model": ErrorResponse, "description": "Invalid request: the detail names the field and the limit."}
_UNAVAILABLE = {
    "model": ErrorResponse,
    "description": "Knowledge store unreachable or refusing writes (full, cannot persist, ACL); the detail says "
    "which. Retry after Retry-After seconds.",
}
_UNAUTHORIZED = {"model": ErrorResponse, "description": "Missing or invalid API key."}
_THROTTLED = {
    "model": ErrorResponse,
    "description": "Over the tenant's rate limit, or (encode, or an ask needing a re-encode) the encode queue is "
    "full (max_pending_encodes); retry after Retry-After seconds.",
}
_TAMPERED = {
    "model": ErrorResponse,
    "description": "The stored record of this knowledge set fails its integrity check (MAC); it was not used. "
    "Delete the set and encode it again.",
}

COMMON: dict[int | str, dict[str, Any]] = {
    401: _UNAUTHORIZED,
    422: _VALIDATION,
    429: _THROTTLED,
    503: _UNAVAILABLE,
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Unknown knowledge id (or another tenant's)."},
    409: _TAMPERED,
}
TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse, "description": "Body over max_body_bytes, or (ask) work over max_ask_tokens."}
}
QUOTA: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorResponse, "description": "The tenant's quota (knowledge sets or bytes) is full."},
    409: _TAMPERED,
}
