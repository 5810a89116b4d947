"""Graceful restarts on a real server: SIGTERM drains (running streams finish, new requests get 503), then exits.

Past ``--shutdown-timeout``, streams still open end with an error event and [DONE], and a non-streamed
request cut by the shutdown gets 503.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import httpx
import orjson
import pytest

from tests.serverproc import ServerProcess, running_server

pytestmark = pytest.mark.e2e

# SmolLM2's <|endoftext|>, <|im_start|>, <|im_end|>: biased away so streams run to max_tokens.
NO_EOS = {"0": -100, "1": -100, "2": -100}
MODEL = "smollm2-135m-instruct"


def wait_exit(server: ServerProcess, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while server.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    code = server.process.poll()
    assert code is not None, "the server did not exit"
    return code


def first_text_then(server: ServerProcess, body: dict[str, Any], then: Any) -> list[bytes]:
    """Stream ``body``; after its first text chunk call ``then()``; return every event that followed."""
    with httpx.stream("POST", server.base_url + "/completions", json=body, timeout=120) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        for line in lines:
            if line.startswith("data: ") and '"text"' in line:
                break
        then()
        return [line.encode() for line in lines if line]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_past_the_grace_open_streams_end_cleanly_and_the_server_exits(sig: signal.Signals) -> None:
    with running_server("--max-num-seqs", "2", "--shutdown-timeout", "1s") as server:
        body = {"model": MODEL, "prompt": "1, 2, 3, 4,", "max_tokens": 3000, "temperature": 0, "stream": True,
                "logit_bias": NO_EOS}
        events = first_text_then(server, body, lambda: server.process.send_signal(sig))
        assert events[-1] == b"data: [DONE]"
        error = orjson.loads(events[-2].removeprefix(b"data: "))
        assert "shutting down" in error["error"]["message"]
        assert "choices" not in error
        # SIGTERM after a drain is a clean exit; Ctrl-C ends as an interrupt.
        assert wait_exit(server) == (0 if sig == signal.SIGTERM else 128 + signal.SIGINT)
        log = server.log()
        assert "Finished server process" in log
        assert "Traceback" not in log


def test_sigterm_lets_running_streams_finish_and_refuses_new_requests() -> None:
    with running_server("--max-num-seqs", "4", "--shutdown-timeout", "60s") as server:
        body = {"model": MODEL, "prompt": "1, 2, 3, 4,", "max_tokens": 60, "temperature": 0, "stream": True,
                "stream_options": {"include_usage": True}, "logit_bias": NO_EOS}
        results: list[list[bytes]] = []
        started = threading.Barrier(5)

        def stream() -> None:
            with httpx.stream("POST", server.base_url + "/completions", json=body, timeout=120) as response:
                assert response.status_code == 200
                lines = response.iter_lines()
                events = [next(lines).encode()]
                started.wait()
                results.append(events + [line.encode() for line in lines if line])

        threads = [threading.Thread(target=stream) for _ in range(4)]
        for thread in threads:
            thread.start()
        started.wait(timeout=120)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        health = httpx.get(server.url + "/health", timeout=10)
        assert health.status_code == 503 and health.json()["status"] == "draining"
        refused = httpx.post(server.base_url + "/completions", json={"model": MODEL, "prompt": "hi"}, timeout=10)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "service_unavailable"
        for thread in threads:
            thread.join(timeout=120)
        assert len(results) == 4
        for events in results:
            assert events[-1] == b"data: [DONE]"
            usage = orjson.loads(events[-2].removeprefix(b"data: ")).get("usage")
            assert usage, events[-3:]
            assert usage["completion_tokens"] == 60
            finish = [orjson.loads(e.removeprefix(b"data: ")) for e in events[:-2]][-1]
            assert finish["choices"][0]["finish_reason"] == "length"
        assert wait_exit(server) == 0


def test_a_non_streamed_request_cut_by_shutdown_gets_503() -> None:
    with running_server("--max-num-seqs", "1", "--shutdown-timeout", "1s") as server:
        body = {"model": MODEL, "prompt": "1, 2, 3, 4,", "max_tokens": 3000, "temperature": 0, "logit_bias": NO_EOS}
        outcome: dict[str, httpx.Response] = {}
        thread = threading.Thread(
            target=lambda: outcome.setdefault("r", httpx.post(server.base_url + "/completions", json=body,
                                                               timeout=120)))
        thread.start()
        deadline = time.monotonic() + 60
        while b"streamserve:num_requests_running 1.0" not in httpx.get(server.url + "/metrics").content:
            assert time.monotonic() < deadline, "the request never started"
            time.sleep(0.1)
        server.process.send_signal(signal.SIGTERM)
        thread.join(timeout=60)
        response = outcome["r"]
        assert response.status_code == 503
        assert response.json()["error"]["type"] == "server_error"
        assert wait_exit(server) == 0
