"""A decode failure injected into one engine step ends that step's streams cleanly; the server goes on."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.ssewire import finish_reasons, read_stream
from tests.serverproc import running_server

pytestmark = pytest.mark.e2e

MODEL = "smollm2-135m-instruct"
NO_EOS = {"0": -100, "1": -100, "2": -100}


def test_an_injected_decode_failure_fails_only_its_step_and_the_engine_keeps_serving() -> None:
    with running_server("--max-num-seqs", "2", env={"STREAMSERVE_FAULT_DECODE_STEP": "10"}) as server, httpx.Client(
        base_url=server.base_url, timeout=120
    ) as http:
        body = {"model": MODEL, "prompt": "1, 2, 3,", "max_tokens": 50, "temperature": 0, "logit_bias": NO_EOS}
        failed = read_stream(http, "/completions", body)
        assert failed.status_code == 200 and failed.saw_done
        error = failed.chunks[-1]
        assert set(error) == {"error"}
        assert "failed to compute this step" in error["error"]["message"]
        assert error["error"]["type"] == "server_error"
        before = failed.chunks[:-1]
        assert any(choice["text"] for chunk in before for choice in chunk["choices"]), "it failed mid-stream"
        assert all(choice["finish_reason"] is None for chunk in before for choice in chunk["choices"])
        # The next requests are served as usual, streamed and not.
        after = read_stream(http, "/completions", body)
        assert finish_reasons(after) == {0: "length"}
        whole = http.post("/completions", json={**body, "max_tokens": 5})
        assert whole.status_code == 200 and whole.json()["choices"][0]["finish_reason"] == "length"
        assert httpx.get(server.url + "/health", timeout=10).json()["status"] == "ok"
        assert "decode failed for 1 sequences" in server.log()
