"""GET /playground: a page for trying encode and ask in a browser (static HTML, CSS and JS; no build step)."""

from functools import lru_cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import Response

router = APIRouter(tags=["playground"], include_in_schema=False)

_STATIC = files("service") / "static"

# Scripts and styles only from this server (no inline code, no CDN); fetch only to this server.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@lru_cache(maxsize=8)
def _read(name: str) -> bytes:
    return _STATIC.joinpath(name).read_bytes()


def _asset(name: str, media_type: str) -> Response:
    return Response(_read(name), media_type=media_type, headers=_HEADERS)


@router.get("/playground", summary="The playground page (public; its API calls send the key typed into it)")
async def playground_page() -> Response:
    return _asset("playground.html", "text/html; charset=utf-8")


@router.get("/playground/playground.js")
async def playground_script() -> Response:
    return _asset("playground.js", "text/javascript; charset=utf-8")


@router.get("/playground/playground.css")
async def playground_style() -> Response:
    return _asset("playground.css", "text/css; charset=utf-8")
