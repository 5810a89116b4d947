"""Clients that stop reading: their sequence is aborted and its lane freed; other streams keep their pace."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from streamserve.bench.hostile import NO_EOS, open_unread_stream
from streamserve.bench.rss import read_rss
from tests.e2e.ssewire import read_stream
from tests.serverproc import ServerProcess, running_server

pytestmark = pytest.mark.e2e

MODEL = "smollm2-135m-instruct"
BACKLOG = 32


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running_server("--max-num-seqs", "2", "--max-backlog", str(BACKLOG)) as process:
        yield process


def metric(server: ServerProcess, name: str) -> float:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert match, name
    return float(match.group(1))


def rss_mb(server: ServerProcess) -> float:
    rss = read_rss(server.process.pid)
    assert rss is not None
    return rss / 2**20


def test_a_client_that_never_reads_is_cut_off_and_its_lane_freed(server: ServerProcess) -> None:
    before = rss_mb(server)
    sock = open_unread_stream(server.url, MODEL, max_tokens=3500)
    try:
        deadline = time.monotonic() + 60
        while metric(server, "streamserve:num_requests_running") == 0:
            assert time.monotonic() < deadline, "the stalled request never started"
            time.sleep(0.05)
        # Meanwhile another client streams at its normal pace.
        other: dict[str, object] = {}
        body = {"model": MODEL, "prompt": "1, 2,", "max_tokens": 100, "temperature": 0, "logit_bias": NO_EOS}
        with httpx.Client(base_url=server.base_url, timeout=120) as http:
            thread = threading.Thread(target=lambda: other.setdefault("s", read_stream(http, "/completions", body)))
            thread.start()
            while "steps unread" not in server.log():
                assert time.monotonic() < deadline + 120, "the unread stream was never cut off"
                time.sleep(0.1)
            thread.join(timeout=120)
        while metric(server, "streamserve:num_requests_running") > 0:
            assert time.monotonic() < deadline + 180, "the unread stream still holds its lane"
            time.sleep(0.1)
        generated = metric(server, "streamserve:generation_tokens_total")
        assert generated < 3500, "the unread stream was generated to its end instead of being cut off"
        stream = other["s"]
        assert stream.saw_done  # type: ignore[attr-defined]
        gaps = [b - a for a, b in zip(stream.times, stream.times[1:], strict=False)]  # type: ignore[attr-defined]
        assert max(gaps) < 0.5
        assert rss_mb(server) - before < 100
    finally:
        sock.close()
