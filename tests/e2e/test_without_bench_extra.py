"""``streamserve serve`` starts, serves and stops with matplotlib and rich unimportable, and never tries them.

The server runs with ``tests/hidden_extra`` first on its PYTHONPATH: any import of either package in
it (or in the child process that proves the CPU kernels) is refused and logged; the log stays empty.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from openai import OpenAI

from tests.hiddenextra import env_without_bench_extra, refused_imports
from tests.serverproc import running_server

pytestmark = pytest.mark.e2e


def test_serves_a_streamed_chat_without_the_bench_extra(tmp_path: Path) -> None:
    log = tmp_path / "refused.log"
    with running_server("--parallel", "1", env=env_without_bench_extra(log)) as server:
        with OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=120.0) as client:
            stream = client.chat.completions.create(
                model="smollm2-135m-instruct", messages=[{"role": "user", "content": "Say hi."}],
                max_tokens=4, temperature=0, stream=True, stream_options={"include_usage": True})
            chunks = list(stream)
        assert chunks[-1].usage is not None and 1 <= chunks[-1].usage.completion_tokens <= 4
        assert any(chunk.choices and chunk.choices[0].finish_reason for chunk in chunks)
    assert server.process.returncode is not None
    assert refused_imports(log) == [], server.log()
