"""The playground page in a real headless Chromium against a real server on the default model.

The server runs with ``--api-key``, so every test also goes through the page's key prompt (the key
lives in the tab's sessionStorage). Each test waits on conditions with deadlines; the deadlines are
generous because the machine is shared (2 cores) and the browser competes with the model for them.
Every request the page sends is collected from Chromium's DevTools log, and the last test checks that
none left the server's origin.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.e2e.browser import chromium, requested_urls, wait_for
from tests.serverproc import ServerProcess, running_server

pytestmark = pytest.mark.e2e

MODEL = "smollm2-135m-instruct"
KEY = "sk-playground-test"
ANSWER_DEADLINE_S = 300.0
# Greedy SmolLM2 says this back with the tags outside any code fence:
# "The sentence is: Use <b>bold</b> and <script>alert(1)</script>".
SAY_BACK = "Say this sentence back to me word for word: Use <b>bold</b> and <script>alert(1)</script> tags."
COUNTING = "Count to 1000, with a comma between each number and no newlines. E.g., 1, 2, 3, ..."  # the notebook's

LAST_ANSWER = """
const turn = [...document.querySelectorAll('#transcript article.assistant')].pop();
if (!turn) return null;
const error = turn.querySelector('.error-text');
const shown = [...turn.querySelectorAll('.answer-text')];
return {
  status: turn.dataset.status,
  texts: shown.map((node) => node.textContent),
  received: shown.map((node) => Number(node.dataset.length)),
  error: error.hidden ? null : error.textContent,
};
"""


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """A keyed server: the page must ask for the key before the API answers it."""
    with running_server("--api-key", KEY, "--max-num-seqs", "2") as process:
        yield process


@pytest.fixture(scope="module")
def seen_urls() -> list[str]:
    """Every URL the page requested during this module."""
    return []


@pytest.fixture(scope="module")
def driver(server: ServerProcess) -> Iterator[WebDriver]:
    with chromium() as browser:
        yield browser


@pytest.fixture(autouse=True)
def _collect_requests(driver: WebDriver, seen_urls: list[str]) -> Iterator[None]:
    yield
    seen_urls.extend(requested_urls(driver))


@pytest.fixture
def page(driver: WebDriver, server: ServerProcess) -> WebDriver:
    """The playground freshly loaded, with the key given if the page asks for it."""
    driver.get(server.url + "/playground")
    wait_for(driver, lambda d: d.execute_script(
        "return document.body.dataset.ready === 'true' || document.getElementById('key-dialog').open"),
        60, "the page neither connected nor asked for a key")
    if driver.execute_script("return document.getElementById('key-dialog').open"):
        give_key(driver, KEY)
    wait_for(driver, lambda d: d.execute_script("return document.body.dataset.ready === 'true'"), 60,
             "the page did not connect")
    return driver


def give_key(driver: WebDriver, key: str) -> None:
    field = driver.find_element(By.ID, "key-input")
    field.send_keys(key)
    driver.find_element(By.ID, "key-save").click()


def set_field(driver: WebDriver, field_id: str, value: object) -> None:
    field = driver.find_element(By.ID, field_id)
    field.clear()
    field.send_keys(str(value))


def ask(driver: WebDriver, text: str) -> None:
    driver.find_element(By.ID, "prompt").send_keys(text)
    driver.find_element(By.ID, "send").click()


def last_answer(driver: WebDriver) -> dict[str, Any] | None:
    result: dict[str, Any] | None = driver.execute_script(LAST_ANSWER)
    return result


def finished(driver: WebDriver) -> dict[str, Any]:
    """Wait until the last answer is no longer streaming; it must have ended as ``done``."""
    answer: dict[str, Any] = wait_for(driver, lambda d: (a := last_answer(d)) and a["status"] not in
                                      ("waiting", "streaming") and a, ANSWER_DEADLINE_S, "the answer never finished")
    assert answer["status"] == "done", answer
    return answer


def bare(text: str) -> str:
    """Text without whitespace or Markdown marks, to compare a token view with rendered Markdown."""
    return re.sub(r"[\s*_`#]", "", text)


def running_count(server: ServerProcess) -> float:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    match = re.search(r"^streamserve:num_requests_running (\S+)$", text, re.MULTILINE)
    assert match, text
    return float(match.group(1))


def timing(driver: WebDriver) -> dict[str, str]:
    result: dict[str, str] = driver.execute_script("return {...document.getElementById('timing').dataset}")
    return result


def test_the_page_asks_for_the_key_and_keeps_it_for_this_tab_only(driver: WebDriver, server: ServerProcess) -> None:
    driver.get(server.url + "/")
    wait_for(driver, lambda d: d.execute_script("return document.getElementById('key-dialog').open"), 60,
             "the key dialog never opened")
    give_key(driver, "sk-wrong")
    wait_for(driver, lambda d: d.find_element(By.ID, "key-error").is_displayed(), 30, "a refused key was not said")
    assert "refused" in driver.find_element(By.ID, "key-error").text
    give_key(driver, KEY)
    wait_for(driver, lambda d: d.execute_script("return document.body.dataset.ready === 'true'"), 60,
             "the page did not connect with the right key")
    options = [o.text for o in driver.find_elements(By.CSS_SELECTOR, "#model option")]
    assert options == [MODEL]
    assert driver.execute_script("return sessionStorage.getItem('streamserve.apiKey')") == KEY
    assert driver.execute_script("return localStorage.length") == 0

    driver.refresh()  # same tab: the key is still there, no question asked
    wait_for(driver, lambda d: d.execute_script("return document.body.dataset.ready === 'true'"), 60,
             "the reloaded page did not connect")
    assert not driver.execute_script("return document.getElementById('key-dialog').open")

    first = driver.current_window_handle
    driver.switch_to.new_window("tab")  # another tab does not have it
    try:
        driver.get(server.url + "/")
        wait_for(driver, lambda d: d.execute_script("return document.getElementById('key-dialog').open"), 60,
                 "a new tab did not ask for the key")
        assert driver.execute_script("return sessionStorage.getItem('streamserve.apiKey')") is None
    finally:
        driver.close()
        driver.switch_to.window(first)


def test_the_answer_grows_while_it_streams_and_the_timing_panel_measures_it(page: WebDriver) -> None:
    set_field(page, "temperature", 0)
    set_field(page, "max_tokens", 40)
    ask(page, COUNTING)
    seen: list[str] = []  # the text on screen at each observation while the answer streamed
    received: list[int] = []  # the characters the page had received by then

    def observe(driver: WebDriver) -> bool:
        answer = last_answer(driver)
        if answer and answer["status"] == "streaming" and answer["texts"]:
            seen.append(answer["texts"][0])
            received.append(answer["received"][0])
        return bool(answer) and answer["status"] not in ("waiting", "streaming")

    wait_for(page, observe, ANSWER_DEADLINE_S, "the answer never finished", poll=0.02)
    answer = finished(page)
    final = answer["texts"][0]
    distinct = list(dict.fromkeys(text for text in seen if text))
    assert len(distinct) >= 3, f"the text was seen in only these states while streaming: {distinct}"
    assert all(final.startswith(text) for text in distinct), "text on screen was not a prefix of the answer"
    assert len(distinct[0]) < len(distinct[-1]) < len(final) or distinct[-1] == final
    assert received == sorted(received)
    assert final.startswith("1, 2, 3, 4")

    stats = timing(page)
    assert stats["state"] == "done"
    ttft, total = float(stats["ttftMs"]), float(stats["totalMs"])
    assert 0 < ttft < total
    assert int(stats["completionTokens"]) == 40  # the usage chunk: finish_reason length at max_tokens
    assert float(stats["rate"]) > 0
    assert int(page.find_element(By.ID, "timing-chart").get_attribute("data-points") or 0) >= 4


def test_the_server_panel_follows_metrics(page: WebDriver, server: ServerProcess) -> None:
    def generated(driver: WebDriver) -> int | None:
        text = driver.find_element(By.ID, "s-generated").text
        return int(float(text)) if text not in ("", "–") else None

    wait_for(page, lambda d: generated(d) is not None, 30, "the server panel never showed /metrics")
    before = generated(page)
    assert before is not None
    stamp = page.find_element(By.ID, "s-updated").text
    wait_for(page, lambda d: d.find_element(By.ID, "s-updated").text != stamp, 30, "the panel did not refresh")
    set_field(page, "temperature", 0)
    set_field(page, "max_tokens", 8)
    ask(page, "Hello!")
    finished(page)
    wait_for(page, lambda d: (g := generated(d)) is not None and g >= before + 1, 10,
             "the generated-token count did not grow after an answer")
    wait_for(page, lambda d: d.find_element(By.ID, "s-running").text == "0", 10, "running did not return to 0")
    assert page.find_element(By.ID, "s-kv").text.endswith("%")


def test_stop_aborts_the_stream_and_the_server_frees_the_lane(page: WebDriver, server: ServerProcess) -> None:
    set_field(page, "temperature", 0)
    set_field(page, "max_tokens", 2000)
    ask(page, COUNTING)
    wait_for(page, lambda d: (a := last_answer(d)) and a["status"] == "streaming" and a["texts"]
             and len(a["texts"][0]) >= 12, ANSWER_DEADLINE_S, "the long answer never started streaming")
    assert running_count(server) >= 1
    page.find_element(By.ID, "stop-button").click()
    wait_for(page, lambda d: last_answer(d)["status"] == "stopped", 10, "the answer was not marked stopped")
    deadline = time.monotonic() + 30
    while running_count(server) != 0:
        assert time.monotonic() < deadline, "the server still runs the stopped request"
        time.sleep(0.1)
    wait_for(page, lambda d: d.find_element(By.ID, "s-running").text == "0", 30,
             "the server panel did not show the lane freed")
    assert "end=disconnect" in server.log()
    assert page.find_element(By.ID, "send").is_enabled()


def test_html_in_an_answer_renders_as_text(page: WebDriver) -> None:
    set_field(page, "temperature", 0)
    set_field(page, "max_tokens", 40)
    ask(page, SAY_BACK)
    answer = finished(page)
    text = answer["texts"][0]
    assert "<script>alert(1)</script>" in text and "<b>bold</b>" in text, text
    inside = page.execute_script(
        "const turn = [...document.querySelectorAll('#transcript article.assistant')].pop();"
        "return [...turn.querySelectorAll('.answer-text *')].map((node) => node.localName)")
    assert not set(inside) & {"script", "b", "img", "iframe"}, inside
    assert page.execute_script("return document.querySelectorAll('#transcript script, #transcript b').length") == 0


RENDER = """
const done = arguments[arguments.length - 1];
import('./playground/assets/js/markdown.js').then(({ renderMarkdown }) => {
  const results = arguments[0].map((text) => {
    const box = document.createElement('div');
    box.append(renderMarkdown(text));
    document.body.append(box);
    const out = { text: box.textContent, tags: [...box.querySelectorAll('*')].map((n) => n.localName),
                  links: [...box.querySelectorAll('a')].map((a) => a.getAttribute('href')) };
    box.remove();
    return out;
  });
  setTimeout(() => done({ results, pwned: window.__pwned ?? null }), 200);
});
"""


def test_the_markdown_renderer_formats_but_never_runs_html(page: WebDriver) -> None:
    inputs = [
        "<img src=x onerror=\"window.__pwned = 1\">",
        "**bold** and *it* and `<b>code</b>`",
        "```html\n<script>window.__pwned = 2</script>\n```",
        "[click](javascript:window.__pwned=3) [ok](https://example.org/a) ![pic](https://example.org/x.png)",
        "| a | b |\n|---|---|\n| <i>1</i> | 2 |",
        "- one\n- <svg onload=\"window.__pwned=4\">",
    ]
    out = page.execute_async_script(RENDER, inputs)
    results = out["results"]
    assert out["pwned"] is None
    assert results[0] == {"text": inputs[0], "tags": ["p"], "links": []}
    assert results[1]["tags"] == ["p", "strong", "em", "code"] and "<b>code</b>" in results[1]["text"]
    assert results[2]["tags"] == ["pre", "code"] and "<script>" in results[2]["text"]
    assert results[3]["links"] == ["https://example.org/a", "https://example.org/x.png"]  # images become links
    assert "img" not in results[3]["tags"]
    assert "<i>1</i>" in results[4]["text"] and "i" not in results[4]["tags"] and "table" in results[4]["tags"]
    assert results[5]["tags"] == ["ul", "li", "li"] and "<svg" in results[5]["text"]


def test_n_choices_side_by_side_with_the_token_view(page: WebDriver) -> None:
    set_field(page, "temperature", 1)
    set_field(page, "seed", 7)
    set_field(page, "n", 2)
    set_field(page, "max_tokens", 12)
    set_field(page, "top_logprobs", 3)
    page.find_element(By.ID, "logprobs").click()
    ask(page, "Name a color.")
    answer = finished(page)
    assert len(answer["texts"]) == 2 and all(answer["texts"]), answer
    page.find_element(By.CSS_SELECTOR, "article.assistant .choice .tokens-toggle").click()
    tokens = page.find_elements(By.CSS_SELECTOR, "article.assistant .choice[data-index='0'] .tok")
    assert tokens
    probs = [float(t.get_attribute("data-prob") or "nan") for t in tokens]
    assert all(0 < p <= 1 for p in probs), probs
    shown = page.execute_script("return document.querySelector(\"article.assistant .choice[data-index='0'] .tokens\")"
                                ".textContent")
    assert bare(shown.replace("↵", "")) == bare(answer["texts"][0])
    assert tokens[0].value_of_css_property("background-color") not in ("", "rgba(0, 0, 0, 0)")
    ActionChains(page).move_to_element(tokens[0]).perform()
    tip = wait_for(page, lambda d: (t := d.find_element(By.ID, "token-tip")).is_displayed() and t, 10,
                   "hovering a token showed no alternatives")
    rows = tip.find_elements(By.TAG_NAME, "tr")
    assert len(rows) >= 3  # top_logprobs=3 alternatives
    assert any("chosen" in (r.get_attribute("class") or "") for r in rows)


def test_multi_turn_with_a_system_prompt_sends_the_whole_conversation(page: WebDriver, server: ServerProcess) -> None:
    page.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": server.url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    system = "You are a terse assistant."
    set_field(page, "system", system)
    set_field(page, "temperature", 0)
    set_field(page, "max_tokens", 12)
    ask(page, "What is 1+1?")
    rendered = finished(page)["texts"][0]
    first_prompt = int(timing(page)["promptTokens"])
    ask(page, "And 2+2?")
    finished(page)
    second_prompt = int(timing(page)["promptTokens"])
    assert len(page.find_elements(By.CSS_SELECTOR, "#transcript article.assistant")) == 2

    # Copy gives the first answer's raw text (Markdown as the model wrote it), which the page sent back as
    # history: the same conversation through the official client has exactly the prompt sizes it reported.
    copy = page.find_element(By.CSS_SELECTOR, "#transcript article.assistant .copy")
    copy.click()
    wait_for(page, lambda d: copy.text == "Copied", 10, "the copy button did not confirm")
    copied = page.execute_async_script(
        "const done = arguments[0]; navigator.clipboard.readText().then(done, (e) => done(String(e)))")
    assert bare(copied) == bare(rendered)
    with OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=60) as client:
        one = [{"role": "system", "content": system}, {"role": "user", "content": "What is 1+1?"}]
        usage = client.chat.completions.create(model=MODEL, messages=one, max_tokens=1).usage  # type: ignore[arg-type]
        assert usage is not None and usage.prompt_tokens == first_prompt
        two = [*one, {"role": "assistant", "content": copied}, {"role": "user", "content": "And 2+2?"}]
        usage = client.chat.completions.create(model=MODEL, messages=two, max_tokens=1).usage  # type: ignore[arg-type]
        assert usage is not None and usage.prompt_tokens == second_prompt

    page.find_element(By.ID, "regenerate").click()
    wait_for(page, lambda d: d.execute_script(
        "return [...document.querySelectorAll('#transcript article.assistant')].pop().dataset.runs") == "2", 10,
        "regenerate did not run the last turn again")
    finished(page)
    assert len(page.find_elements(By.CSS_SELECTOR, "#transcript article.assistant")) == 2
    assert int(timing(page)["promptTokens"]) == second_prompt


def test_a_refused_request_shows_the_servers_error(page: WebDriver) -> None:
    set_field(page, "max_tokens", 100000)
    ask(page, "Hello!")
    answer = wait_for(page, lambda d: (a := last_answer(d)) and a["status"] == "error" and a, 60,
                      "no error was shown")
    assert answer["error"].startswith("400 invalid_request_error"), answer
    assert "context" in answer["error"]
    set_field(page, "max_tokens", 8)
    set_field(page, "tools", "[{")
    ask(page, "Hello again")
    answer = wait_for(page, lambda d: (a := last_answer(d)) and a["status"] == "error" and a, 10,
                      "bad tools JSON was not reported")
    assert "tools is not valid JSON" in answer["error"]


def test_compare_runs_the_notebooks_experiment(page: WebDriver) -> None:
    set_field(page, "temperature", 0)
    set_field(page, "max_tokens", 32)
    page.find_element(By.ID, "compare").click()
    wait_for(page, lambda d: d.find_element(By.ID, "compare-result").get_attribute("data-state") in ("done", "error"),
             ANSWER_DEADLINE_S, "the comparison never finished")
    result = page.find_element(By.ID, "compare-result")
    assert result.get_attribute("data-state") == "done", page.find_element(By.ID, "compare-note").text
    whole = float(result.get_attribute("data-whole-ms") or "nan")
    ttft = float(result.get_attribute("data-ttft-ms") or "nan")
    total = float(result.get_attribute("data-total-ms") or "nan")
    assert 0 < ttft < total and ttft < whole
    assert int(page.find_element(By.ID, "compare-chart").get_attribute("data-points") or 0) >= 5
    assert "first token came after" in page.find_element(By.ID, "compare-note").text


def test_the_page_made_no_request_outside_the_servers_origin(
        page: WebDriver, server: ServerProcess, seen_urls: list[str]) -> None:
    """Every request of this module's pages, plus one answer of this test's own (it may run alone)."""
    set_field(page, "max_tokens", 8)
    ask(page, "Hello!")
    finished(page)
    seen_urls.extend(requested_urls(page))
    assert any(url.endswith("/v1/chat/completions") for url in seen_urls)
    assert any(url.endswith("/metrics") for url in seen_urls)
    assert any("/playground/assets/js/" in url for url in seen_urls)
    # chrome:// and chrome-untrusted:// are the browser's own UI (the new tab opened by the key test) and
    # data: is inline: none touches the network. Every http(s) request must be this server.
    outside = sorted({url for url in seen_urls
                      if url.startswith(("http://", "https://")) and not url.startswith(server.url + "/")})
    assert outside == []
