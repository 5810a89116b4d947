"""The API's docs page (``/docs``) without a model: what it refers to, with which headers, and what is gone.

That Swagger UI really renders from these files, offline, is proven in a browser by
``tests/e2e/test_docs_page.py``; here: the page names only same-origin assets, each of them is served
from installed packages, it has no inline script, and its Content-Security-Policy names no other origin.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from streamserve.api.app import create_app
from streamserve.config import ServerConfig


class _Page(HTMLParser):
    """The URLs a page refers to (``src``, ``href``, ``data-*-url``) and the text of its script elements."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is not None and (name in ("src", "href") or (name.startswith("data-") and name.endswith("-url"))):
                self.refs.append(value)
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


def client(playground: bool = True) -> TestClient:
    return TestClient(create_app(ServerConfig(model="unused", playground=playground), ("m",)))


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


@pytest.mark.parametrize("playground", [True, False])
def test_the_page_is_served_with_a_content_security_policy_of_this_origin_only(playground: bool) -> None:
    response = client(playground).get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    directives = dict(d.strip().split(" ", 1) for d in response.headers["content-security-policy"].split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert set(directives["img-src"].split()) <= {"'self'", "data:"}
    assert directives["frame-ancestors"] == "'none'"
    for sources in directives.values():  # no other origin, no inline script or style, no eval
        assert not re.search(r"https?:|\*|'unsafe-", sources), sources
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "<title>streamserve - Swagger UI</title>" in response.text
    assert client(playground).head("/docs").status_code == 200


def test_every_asset_the_page_names_is_same_origin_and_served() -> None:
    http = client()
    page = parse(http.get("/docs").text)
    assert page.refs, "the page names no asset"
    for ref in page.refs:
        assert not re.match(r"^([a-z][a-z0-9+.-]*:|//)", ref, re.IGNORECASE), f"{ref} is not same-origin"
        assert not ref.startswith("/"), f"{ref} should be relative, to work behind a proxy's path prefix"
        response = http.get("/" + ref)  # the page is /docs, so a relative URL resolves from /
        assert response.status_code == 200, ref
        kind = response.headers["content-type"].split(";")[0]
        expected = {".js": ("text/javascript", "application/javascript"), ".css": ("text/css",),
                    ".json": ("application/json",), ".png": ("image/png",)}
        assert kind in expected[ref[ref.rindex("."):]], (ref, kind)
    assert {"docs/assets/swagger-ui-bundle.js", "docs/assets/swagger-ui.css", "docs/assets/swagger-init.js",
            "openapi.json"} <= set(page.refs)


def test_the_page_has_no_inline_script() -> None:
    page = parse(client().get("/docs").text)
    assert len(page.scripts) == 2  # Swagger UI's bundle, then our start-up script, both files
    assert all(not text.strip() for text in page.scripts), page.scripts
    assert not re.search(r"\son[a-z]+\s*=", client().get("/docs").text), "an inline event handler"


def test_the_openapi_document_stays_and_lists_the_api_not_the_docs() -> None:
    response = client().get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/v1/chat/completions" in paths and "/v1/responses" in paths
    assert not [path for path in paths if path.startswith("/docs")]


def test_fastapis_cdn_pages_are_gone() -> None:
    http = client()
    assert http.get("/redoc").status_code == 404  # ReDoc needs inline styles and a CDN logo: not served
    assert http.get("/docs/oauth2-redirect").status_code == 404  # no OAuth2 here
    for path in ("/docs", "/docs/assets/swagger-init.js"):
        assert "cdn.jsdelivr.net" not in http.get(path).text
