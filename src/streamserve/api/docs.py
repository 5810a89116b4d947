"""The API's own documentation page, ``/docs`` (Swagger UI over ``/openapi.json``), served offline.

FastAPI's built-in ``/docs`` and ``/redoc`` load their JavaScript and CSS from a CDN, so on a machine
without internet they are blank. Here Swagger UI's files come from the installed ``fastapi-offline``
package (its package data only: Swagger UI's bundle, stylesheet and FastAPI's icon) and are served
under ``/docs/assets``; the page starts Swagger UI with a script of our own
(``static/docs/swagger-init.js``) instead of FastAPI's inline one. Like the playground, the page's
Content-Security-Policy allows nothing from any other origin and no inline script, so nothing it
does can leave the server, and a CDN reference slipped in later would be refused rather than fetched.

ReDoc is not served (``/redoc`` is a 404). Its offline bundle (ReDoc 2.5) does not start under this
policy: it injects inline styles (it fails outright without ``style-src 'unsafe-inline'``), runs its
search in a ``blob:`` worker and loads its logo from its own CDN. Serving it would take a weaker
policy, and still a request out, for a second view of the same ``/openapi.json``.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from streamserve.api.playground import content_security_policy, page_headers

STATIC_DIR = Path(__file__).parent / "static" / "docs"
"""Our own files for the page (its start-up script), shipped as package data."""

DOCS_PATH = "/docs"
"""Where the page is."""

ASSETS_PATH = "/docs/assets"
"""The URL prefix of the page's scripts, stylesheet and icon (the page refers to them relatively)."""

SWAGGER_UI_PACKAGE = ("fastapi_offline", "static")
"""The installed package, and its folder, that Swagger UI's files are served from."""

CONTENT_SECURITY_POLICY = content_security_policy("'self' data:")  # Swagger UI's icons are data: URLs
"""The playground's policy, with images also from ``data:`` URLs."""

PAGE_HEADERS = page_headers(CONTENT_SECURITY_POLICY)

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} - Swagger UI</title>
  <link rel="icon" href="{assets}/favicon.png" type="image/png">
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{openapi}"></div>
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script src="{assets}/swagger-init.js"></script>
</body>
</html>
"""


def docs_page(title: str, openapi_url: str) -> str:
    """The page's HTML; every URL in it is relative, so it also works behind a proxy's path prefix."""
    return _PAGE.format(title=escape(title), assets=escape(ASSETS_PATH.lstrip("/")),
                        openapi=escape(openapi_url.lstrip("/")))


def mount_docs(app: FastAPI) -> None:
    """Serve the page at ``/docs`` and its assets under ``/docs/assets``.

    The app must be built with ``docs_url=None`` (FastAPI's own page would take the path first) and
    an ``openapi_url``, which the page reads.
    """
    if app.openapi_url is None:
        raise ValueError("the docs page needs the app's openapi_url")
    page = docs_page(app.title, app.openapi_url)
    router = APIRouter(include_in_schema=False)

    @router.api_route(DOCS_PATH, methods=["GET", "HEAD"])
    async def docs() -> HTMLResponse:
        """Swagger UI over this server's OpenAPI document; it needs no API key, as ``/openapi.json`` does not."""
        return HTMLResponse(page, headers=PAGE_HEADERS)

    app.include_router(router)
    # Our start-up script first, then Swagger UI's own files from the installed package.
    app.mount(ASSETS_PATH, StaticFiles(directory=STATIC_DIR, packages=[SWAGGER_UI_PACKAGE]),
              name="docs-assets")
