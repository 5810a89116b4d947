"""A client that leaves while its request waits for a lane or while its prompt is read frees everything.

One lane and a queue of two (``--max-num-seqs 1 --max-queue 2``): a sequence leaked from the queue or from
prefill would hold the only lane or a queue place, so the checks below would time out.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from streamserve.bench.prometheus import parse_metrics
from tests.serverproc import ServerProcess, running_server

pytestmark = pytest.mark.e2e

MODEL = "smollm2-135m-instruct"
NO_EOS = {"0": -100, "1": -100, "2": -100}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running_server("--max-num-seqs", "1", "--max-queue", "2") as process:
        yield process


def gauge(server: ServerProcess, name: str) -> float:
    return parse_metrics(httpx.get(server.url + "/metrics").text)[f"streamserve:{name}"]


def wait_for(condition: Callable[[], bool], what: str, deadline_s: float = 90.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def log_line(server: ServerProcess, request_id: str) -> str:
    wait_for(lambda: any(request_id in line and "end=" in line for line in server.log().splitlines()),
             f"no log line for {request_id}")
    return next(line for line in server.log().splitlines() if request_id in line and "end=" in line)


def test_leaving_the_queue_frees_its_place(server: ServerProcess) -> None:
    busy = {"model": MODEL, "prompt": "1, 2, 3,", "max_tokens": 3000, "temperature": 0, "stream": True,
            "logit_bias": NO_EOS}
    queued_id = f"e2e-queued-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=server.base_url, timeout=60) as http, http.stream(
        "POST", "/completions", json=busy
    ) as running:
        lines = running.iter_lines()  # kept: a dropped iterator closes the response
        next(lines)  # the lane is taken
        with http.stream("POST", "/completions", json={**busy, "max_tokens": 5},
                         headers={"x-request-id": queued_id}) as queued:
            assert queued.status_code == 200
            wait_for(lambda: gauge(server, "num_requests_waiting") == 1, "the second request never queued")
        # It left while waiting: the queue empties while the first still runs.
        wait_for(lambda: gauge(server, "num_requests_waiting") == 0, "the abandoned request still waits")
        assert gauge(server, "num_requests_running") == 1
    line = log_line(server, queued_id)
    assert "output=0" in line and line.rstrip().endswith("end=disconnect"), line
    wait_for(lambda: gauge(server, "num_requests_running") == 0, "the lane was not freed")


def test_leaving_during_prefill_frees_the_lane(server: ServerProcess) -> None:
    request_id = f"e2e-prefill-{uuid.uuid4().hex[:8]}"
    long_prompt = "The quick brown fox jumps over the lazy dog. " * 350  # about 3,500 tokens to read
    body = {"model": MODEL, "prompt": long_prompt, "max_tokens": 100, "temperature": 0, "stream": True}
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        with http.stream("POST", "/completions", json=body, headers={"x-request-id": request_id}) as response:
            assert response.status_code == 200
            wait_for(lambda: gauge(server, "num_requests_running") == 1, "the long prompt never started")
        line = log_line(server, request_id)
        assert "output=0" in line and line.rstrip().endswith("end=disconnect"), line
        wait_for(lambda: gauge(server, "num_requests_running") == 0, "the lane was not freed", 90)
        short = http.post("/completions", json={"model": MODEL, "prompt": "1, 2,", "max_tokens": 3})
        assert short.status_code == 200
