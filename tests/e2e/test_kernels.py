"""CPU kernels chosen at startup: a probe child that crashes makes the server fall back, not fall over."""

from __future__ import annotations

import httpx
import pytest
from openai import OpenAI

from tests.serverproc import ServerProcess, running_server

pytestmark = pytest.mark.e2e


def test_a_crashing_probe_falls_back_to_plain_kernels_and_serves() -> None:
    with running_server("--max-num-seqs", "2", env={"STREAMSERVE_PROBE_FAULT": "crash"}) as server:
        health = httpx.get(server.url + "/health", timeout=10).json()
        kernels = health["cpu_kernels"]
        assert kernels["extra_buffer_types"], "this llama.cpp build has no extra buffer type to probe"
        assert kernels["enabled"] is False
        assert "SIGSEGV" in kernels["reason"]
        log = server.log()
        assert "WARNING" in log and "crashed the probe process (SIGSEGV)" in log
        assert "CPU extra buffer types" in log and ": off, the probe crashed" in log
        client = OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=60)
        stream = client.chat.completions.create(
            model="smollm2-135m-instruct",
            messages=[{"role": "user", "content": "Say hi."}],
            max_tokens=8,
            temperature=0,
            stream=True,
        )
        chunks = [c for c in stream if c.choices and c.choices[0].delta.content]
        assert len(chunks) >= 2


def test_health_reports_the_session_servers_kernel_choice(server: ServerProcess) -> None:
    kernels = httpx.get(server.url + "/health", timeout=10).json()["cpu_kernels"]
    assert set(kernels) == {"extra_buffer_types", "enabled", "reason"}
    if kernels["enabled"]:
        assert kernels["reason"] == "a probe decode passed"
    else:
        assert kernels["reason"] == "nothing to probe" or kernels["reason"].startswith("the probe")
