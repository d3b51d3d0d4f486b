"""Pure-ASGI middleware: request counting by route template, and the request body byte limit."""

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import REQUESTS


def _route_template(scope: Scope) -> str:
    # The template ("/knowledge/{knowledge_id}"), never the raw path: no ids in labels.
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestMetricsMiddleware:
    """Counts every HTTP request in reckoning_requests_total{route,status}."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client sees if the app raises before responding

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            REQUESTS.labels(route=_route_template(scope), status=str(status)).inc()


class BodyLimitMiddleware:
    """Refuses bodies over `max_bytes` with 413: by Content-Length up front, then by bytes actually received.

    The check runs inside `receive`, i.e. when the endpoint reads the body after routing, so the
    413 goes through the app's exception handlers and is counted under its route.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> HTTPException:
        return HTTPException(
            status_code=413,
            detail=f"request body over the limit max_body_bytes={self.max_bytes} bytes",
            # The rest of the body is never read, so the connection cannot be reused.
            headers={"Connection": "close"},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((value for name, value in scope.get("headers", []) if name == b"content-length"), None)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
                raise self._too_large()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:  # chunked uploads have no Content-Length to trust
                    raise self._too_large()
            return message

        await self.app(scope, limited_receive, send)
