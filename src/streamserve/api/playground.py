"""The playground: a browser page at ``/`` and ``/playground`` that chats through the server's own API.

The page and its assets are package data (``api/static/``), so it works offline. It is plain HTML, CSS
and JavaScript modules: the page talks to ``/v1/chat/completions``, ``/v1/models`` and ``/metrics``
like any other client. Its Content-Security-Policy allows no script, style, image or connection from
anywhere but this server, and no inline script at all: a second wall behind the page's own rule that
model output only ever becomes text nodes.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
"""Where the page and its assets live inside the installed package."""

ASSETS_PATH = "/playground/assets"
"""The URL prefix of the page's scripts, styles and icon (the page refers to them relatively)."""

def content_security_policy(img_src: str = "'self'") -> str:
    """Everything from this origin only; no inline script or style, no frames, no form posts. ``img_src``
    widens images alone (the docs page's stylesheet draws icons as ``data:`` URLs)."""
    return "; ".join((
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        f"img-src {img_src}",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ))


def page_headers(policy: str) -> dict[str, str]:
    """The headers a page of this server is sent with: ``policy``, no sniffing, no referrer, no caching."""
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


CONTENT_SECURITY_POLICY = content_security_policy()
PAGE_HEADERS = page_headers(CONTENT_SECURITY_POLICY)


def mount_playground(app: FastAPI) -> None:
    """Serve the page at ``/`` and ``/playground`` and its assets under ``/playground/assets``."""
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    router = APIRouter(include_in_schema=False)

    @router.api_route("/", methods=["GET", "HEAD"])
    @router.api_route("/playground", methods=["GET", "HEAD"])
    async def playground() -> HTMLResponse:
        """The playground page; it needs no API key (it asks for one when the API does)."""
        return HTMLResponse(page, headers=PAGE_HEADERS)

    app.include_router(router)
    app.mount(ASSETS_PATH, StaticFiles(directory=STATIC_DIR), name="playground-assets")
