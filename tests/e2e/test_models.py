"""Several models in one server: the two shipped models (and a broken file) loaded on demand by each request's
``model``, through the official client, against a real server; then a budget that fits only one of them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from streamserve.bench.prometheus import parse_metrics
from streamserve.bench.rss import read_rss
from tests.serverproc import ServerProcess, running_server

SMOL, GEMMA, BROKEN = "smollm2-135m-instruct", "gemma-3-270m", "broken"
SMALL = ("--max-model-len", "512", "--max-num-seqs", "4")
MESSAGES = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def broken_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / f"{BROKEN}.gguf"
    path.write_bytes(b"GGUF" + bytes(range(256)) * 64)  # a GGUF magic and nothing llama.cpp can read
    return path


@pytest.fixture(scope="module")
def server(broken_file: Path) -> Iterator[ServerProcess]:
    with running_server("--model", SMOL, "--model", GEMMA, "--model", str(broken_file), *SMALL) as process:
        yield process


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[OpenAI]:
    with OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120) as c:
        yield c


def states(server: ServerProcess) -> dict[str, str]:
    return {m["id"]: m["state"] for m in httpx.get(server.base_url + "/models", timeout=10).json()["data"]}


def loads(server: ServerProcess, model: str) -> float:
    return parse_metrics(httpx.get(server.url + "/metrics", timeout=10).text).get(
        f'streamserve:model_loads_total{{model_name="{model}"}}', 0.0)


def stream_text(client: OpenAI, model: str, max_tokens: int = 6, **extra: object) -> tuple[str, str | None]:
    text, finish = "", None
    for chunk in client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=max_tokens, stream=True,
                                                temperature=0, extra_body=extra or None):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    return text, finish


def test_every_model_is_listed_before_any_is_loaded(server: ServerProcess, client: OpenAI) -> None:
    listed = {model.id: model for model in client.models.list()}
    assert set(listed) == {SMOL, GEMMA, BROKEN}
    assert states(server) == dict.fromkeys((SMOL, GEMMA, BROKEN), "unloaded")
    health = httpx.get(server.url + "/health", timeout=10).json()
    assert health["status"] == "ok" and health["models"][GEMMA] == {"state": "unloaded"}


def test_a_streamed_request_to_an_unloaded_model_gets_bytes_before_the_load_ends(server: ServerProcess) -> None:
    body = {"model": GEMMA, "messages": MESSAGES, "max_tokens": 4, "stream": True}
    lines: list[tuple[float, str]] = []
    start = time.monotonic()
    with httpx.stream("POST", server.base_url + "/chat/completions", json=body, timeout=120) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line:
                lines.append((time.monotonic() - start, line))
    first_data = next(t for t, line in lines if line.startswith("data: {"))
    comments = [t for t, line in lines if line.startswith(":")]
    assert comments and comments[0] < first_data  # the stream was open, and said so, while the model loaded
    assert lines[-1][1] == "data: [DONE]"
    assert states(server)[GEMMA] == "loaded"


def test_eight_simultaneous_first_requests_cause_one_load(server: ServerProcess, client: OpenAI) -> None:
    results: list[tuple[str, str | None]] = []
    threads = [threading.Thread(target=lambda: results.append(stream_text(client, SMOL))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(results) == 8 and all(text and finish == "length" for text, finish in results)
    assert loads(server, SMOL) == 1


def test_both_models_stream_at_once_and_alternating_requests_reload_neither(server: ServerProcess,
                                                                           client: OpenAI) -> None:
    before = (loads(server, SMOL), loads(server, GEMMA))
    results: dict[str, tuple[str, str | None]] = {}
    threads = [threading.Thread(target=lambda m=m: results.__setitem__(m, stream_text(client, m, 24)))
               for m in (SMOL, GEMMA)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(text and finish in ("length", "stop") for text, finish in results.values()), results
    for _ in range(2):
        for model in (SMOL, GEMMA):
            assert stream_text(client, model)[0]
    assert (loads(server, SMOL), loads(server, GEMMA)) == before == (1, 1)
    cards = {m["id"]: m for m in httpx.get(server.base_url + "/models", timeout=10).json()["data"]}
    assert cards[SMOL]["max_model_len"] == cards[GEMMA]["max_model_len"] == 512


def test_every_api_family_routes_by_model_and_a_stored_response_continues_on_another(server: ServerProcess,
                                                                                   client: OpenAI) -> None:
    first = client.responses.create(model=SMOL, input="Name a colour.", max_output_tokens=16)
    second = client.responses.create(model=GEMMA, input="And another?", previous_response_id=first.id,
                                     max_output_tokens=16)
    assert (first.model, second.model) == (SMOL, GEMMA)
    alone = client.responses.create(model=GEMMA, input="And another?", max_output_tokens=16, store=False)
    assert second.usage is not None and alone.usage is not None
    assert second.usage.input_tokens > alone.usage.input_tokens  # the history came along, in Gemma's template
    completion = client.completions.create(model=GEMMA, prompt="Once upon", max_tokens=3)
    assert completion.model == GEMMA and completion.choices[0].text
    message = httpx.post(server.base_url + "/messages", timeout=120, json={
        "model": SMOL, "max_tokens": 3, "messages": [{"role": "user", "content": "Hi"}]}).json()
    assert message["type"] == "message" and message["model"] == SMOL


def test_a_model_that_fails_to_load_is_a_clear_error_and_the_others_keep_serving(server: ServerProcess,
                                                                                  client: OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as whole:
        client.chat.completions.create(model=BROKEN, messages=MESSAGES, max_tokens=4)
    assert whole.value.code == "model_load_failed" and f"'{BROKEN}' failed to load" in whole.value.message
    with pytest.raises(openai.APIError) as streamed:
        stream_text(client, BROKEN)
    assert f"'{BROKEN}' failed to load" in str(streamed.value)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=MESSAGES, max_tokens=4)
    assert stream_text(client, SMOL)[0]
    health = httpx.get(server.url + "/health", timeout=10).json()
    assert health["status"] == "ok" and "failed to load" in health["models"][BROKEN]["error"]


def test_keep_alive_zero_unloads_after_the_request_and_the_control_routes(server: ServerProcess,
                                                                          client: OpenAI) -> None:
    assert stream_text(client, GEMMA, keep_alive=0)[0]
    deadline = time.monotonic() + 10
    while states(server)[GEMMA] != "unloaded":
        assert time.monotonic() < deadline, "keep_alive 0 did not unload the model"
        time.sleep(0.2)
    loaded = httpx.post(server.url + "/models/load", json={"model": GEMMA}, timeout=120).json()
    assert loaded["state"] == "loaded" and loaded["memory_bytes"] > 0
    listing = httpx.get(server.url + "/models", timeout=10).json()
    assert listing == httpx.get(server.base_url + "/models", timeout=10).json()
    assert httpx.post(server.url + "/models/unload", json={"model": GEMMA}, timeout=60).json()["state"] == "unloaded"
    missing = httpx.post(server.url + "/models/unload", json={"model": "nope"}, timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    bad = client.chat.completions.with_raw_response.create
    with pytest.raises(openai.BadRequestError, match="keep_alive"):
        bad(model=SMOL, messages=MESSAGES, max_tokens=2, extra_body={"keep_alive": "soon"})


def test_a_budget_for_one_model_swaps_them_by_lru_and_never_unloads_a_streaming_one() -> None:
    # With this context SmolLM2 counts about 190 MiB and Gemma about 510 MiB (docs/models.md): one fits, not both.
    with running_server("--model", SMOL, "--model", GEMMA, *SMALL, "--max-memory", "640MiB") as server, \
            OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120) as client:
        baseline = read_rss(server.process.pid) or 0
        peak = [baseline]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.is_set():
                peak[0] = max(peak[0], read_rss(server.process.pid) or 0)
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            for model in (SMOL, GEMMA, SMOL, GEMMA):
                assert stream_text(client, model)[0]
                assert [m for m, s in states(server).items() if s == "loaded"] == [model]
            # Gemma streams; SmolLM2 cannot make room by unloading it, so it is told to come back later.
            long = client.chat.completions.create(model=GEMMA, messages=MESSAGES, max_tokens=200, stream=True,
                                                  temperature=0)
            next(iter(long))
            refused = httpx.post(server.base_url + "/chat/completions", timeout=60,
                                 json={"model": SMOL, "messages": MESSAGES, "max_tokens": 2})
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            assert refused.json()["error"]["code"] == "model_memory_busy"
            finishes = [c.choices[0].finish_reason for c in long if c.choices and c.choices[0].finish_reason]
            assert len(finishes) == 1  # the stream was not cut: it ended as a stream ends
        finally:
            sampling.set()
            sampler.join()
        metrics = parse_metrics(httpx.get(server.url + "/metrics", timeout=10).text)
        budget = metrics["streamserve:models_memory_budget_bytes"]
        assert budget == 640 * 2**20
        assert peak[0] - baseline <= budget * 1.1, (peak[0] - baseline, budget)
        assert metrics[f'streamserve:model_loads_total{{model_name="{SMOL}"}}'] == 2
