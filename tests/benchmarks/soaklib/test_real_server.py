"""A small soak against a real streamserve on 127.0.0.1, default model: every stream passes the checker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from soaklib.plan import LONG_PROMPT, plan_requests, soak_prompts
from soaklib.run import SoakConfig, run_soak
from soaklib.summary import summarize

from streamserve.bench.client import BenchClient
from streamserve.bench.record import RequestOptions
from tests.serverproc import ServerProcess, running_server

pytestmark = pytest.mark.e2e

MAX_TOKENS = 16


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """One real server, default model, for the whole module."""
    with running_server() as process:
        yield process


def test_soak_run_against_the_real_server(server: ServerProcess) -> None:
    """A small soak: every stream passes the wire checker, hang-ups free their lanes, RSS is sampled."""
    prompts = [p for p in soak_prompts() if p.name not in (LONG_PROMPT, "long")]  # short prompts keep it quick
    plan = plan_requests(16, model="smollm2-135m-instruct", seed=7, hangup_rate=0.3, slow_rate=0.1, prompts=prompts)
    for planned in plan:  # and short answers
        key = "max_completion_tokens" if "max_completion_tokens" in planned.body else "max_tokens"
        planned.body[key] = min(planned.body.get(key) or MAX_TOKENS, MAX_TOKENS)
    config = SoakConfig(requests=len(plan), levels=(4, 12), per_level=1, minimum=4, replay=3, lanes=8,
                        rss_interval=0.2, timeout=300.0)

    async def go() -> dict[str, Any]:
        async with BenchClient(server.base_url, options=RequestOptions(timeout=config.timeout)) as client:
            run = await run_soak(client, plan, config, metrics_url=server.url + "/metrics", pid=server.process.pid)
        return summarize(run, command="test", server={"pid": server.process.pid})

    record = asyncio.run(go())
    assert record["requests"]["sent"] == 16 and record["errors"]["total"] == 0, record["errors"]
    assert record["wire"]["streams_with_violations"] == 0, record["wire"]["examples"]
    assert record["tokens"] == {**record["tokens"], "lost": 0, "duplicated": 0}
    assert record["disconnects"]["hung_up"] >= 2
    assert sum(record["disconnects"]["server_aborted_sequences"].values()) >= 1
    assert record["end_state"]["after_load"]["idle"] and record["end_state"]["at_end"]["idle"]
    assert record["replay"]["sampled"] == 3 and len(record["rss"]["samples"]) >= 2
