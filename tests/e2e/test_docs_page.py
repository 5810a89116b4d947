"""The API's docs page (``/docs``, Swagger UI) in a real headless Chromium against the session's real server.

Swagger UI's script and stylesheet ship in an installed package, so the page must render every operation
and "Try it out" must reach the API with nothing but this server to talk to. Every request the page
makes is read back from Chromium's DevTools log, and the browser's console must show no request or
script that the page's Content-Security-Policy refused (a refusal would mean the page tried something
the policy forbids, such as another origin or an inline script, and lost a piece of itself).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from tests.e2e.browser import chromium, requested_urls, wait_for
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.e2e

RENDER_DEADLINE_S = 60.0

OPERATIONS = """
return [...document.querySelectorAll('#swagger-ui .opblock')].map((block) => [
  block.querySelector('.opblock-summary-method').textContent,
  block.querySelector('.opblock-summary-path').dataset.path,
]);
"""

LIVE_RESPONSE = """
const table = arguments[0].querySelector('.live-responses-table tbody');
if (!table) return null;
return {
  status: table.querySelector('.response-col_status').textContent.trim(),
  body: table.querySelector('.response-col_description pre').textContent,
};
"""


@pytest.fixture(scope="module")
def seen_urls() -> list[str]:
    """Every URL the page requested during this module."""
    return []


@pytest.fixture(scope="module")
def page(server: ServerProcess) -> Iterator[WebDriver]:
    """``/docs`` loaded once, with Swagger UI's operations list rendered."""
    with chromium() as driver:
        driver.get(server.url + "/docs")
        wait_for(driver, lambda d: d.execute_script(OPERATIONS), RENDER_DEADLINE_S,
                 "Swagger UI never rendered the operations list")
        yield driver


@pytest.fixture(autouse=True)
def _collect_requests(page: WebDriver, seen_urls: list[str]) -> Iterator[None]:
    yield
    seen_urls.extend(requested_urls(page))


def operations(page: WebDriver) -> list[tuple[str, str]]:
    return [(method, path) for method, path in page.execute_script(OPERATIONS)]


def operation(page: WebDriver, operation_id: str) -> WebElement:
    """One operation's block, expanded."""
    block = page.find_element(By.ID, f"operations-default-{operation_id}")
    block.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
    wait_for(page, lambda d: block.find_elements(By.CSS_SELECTOR, ".opblock-body"), 10,
             f"{operation_id} did not expand")
    return block


def test_swagger_ui_renders_every_operation_from_openapi_json(page: WebDriver) -> None:
    shown = operations(page)
    assert ("POST", "/v1/chat/completions") in shown
    assert ("POST", "/v1/completions") in shown
    assert ("POST", "/v1/responses") in shown
    assert ("GET", "/v1/models") in shown
    assert page.title == "streamserve - Swagger UI"


def test_an_operation_shows_its_request_schema(page: WebDriver) -> None:
    block = operation(page, "chat_completions_v1_chat_completions_post")
    text = block.text
    assert "Request body" in text
    assert '"messages"' in text and '"stream_options"' in text, text[:500]


def test_try_it_out_calls_the_api_on_this_server(page: WebDriver, server: ServerProcess,
                                                 seen_urls: list[str]) -> None:
    block = operation(page, "list_models_v1_models_get")
    block.find_element(By.CSS_SELECTOR, ".try-out__btn").click()
    wait_for(page, lambda d: block.find_elements(By.CSS_SELECTOR, ".execute"), 10, "no Execute button")
    block.find_element(By.CSS_SELECTOR, ".execute").click()
    response: dict[str, Any] = wait_for(page, lambda d: d.execute_script(LIVE_RESPONSE, block), 30,
                                        "Execute showed no response")
    assert response["status"] == "200", response
    assert '"id": "smollm2-135m-instruct"' in response["body"], response["body"]
    seen_urls.extend(urls := requested_urls(page))
    assert server.url + "/v1/models" in urls


def test_the_page_made_no_request_outside_the_servers_origin(
        page: WebDriver, server: ServerProcess, seen_urls: list[str]) -> None:
    """Every request of this module's page: the page itself, its assets, the schema, and Try it out's call."""
    seen_urls.extend(requested_urls(page))
    for path in ("/docs", "/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css",
                 "/docs/assets/swagger-init.js", "/openapi.json"):
        assert server.url + path in seen_urls, path
    # chrome:// and chrome-untrusted:// are the browser's own UI and data: is inline: none touches the
    # network. Every http(s) request must be this server.
    outside = sorted({url for url in seen_urls
                      if url.startswith(("http://", "https://")) and not url.startswith(server.url + "/")})
    assert outside == []


def test_the_content_security_policy_refused_nothing(page: WebDriver) -> None:
    """The policy allows what the page needs: no refused script, style, image or connection on the console."""
    problems = [entry["message"] for entry in page.get_log("browser") if entry["level"] == "SEVERE"]
    assert problems == []
