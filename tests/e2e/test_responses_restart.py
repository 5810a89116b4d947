"""Stored responses across real server restarts over one data directory, admission limits and retention.

Three servers in turn share one ``--data-dir``, each with one lane and no queue (``--max-num-seqs 1
--max-queue 0``), so a background response holds the only lane while it runs:

1. a completed response; a long background one; a second background one is a 429; a second server
   on the same data directory refuses to start; then the process is killed (SIGKILL).
2. after that restart, the killed background response is ``failed`` with a clear error and its event
   log ends with ``response.failed``; the completed one is retrievable and can be chained from. A new
   long background response, then Ctrl-C.
3. after that graceful stop, the response is ``failed`` ("shut down") with its partial output. With
   short ``--store-events-ttl`` and ``--store-ttl``, a new response loses its event log first, then
   is swept away itself.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.serverproc import ServerProcess, running_server

pytestmark = pytest.mark.e2e

MODEL = "smollm2-135m-instruct"
COUNT = "Count from 1 to 1000, separated by commas."
ONE_LANE = ("--max-num-seqs", "1", "--max-queue", "0")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("responses-data")


def client_for(server: ServerProcess) -> OpenAI:
    return OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=300)


def start_long_background(client: OpenAI) -> str:
    """A background response that runs for minutes, once its first text exists."""
    response = client.responses.create(model=MODEL, input=COUNT, background=True, temperature=0,
                                       max_output_tokens=3000)
    deadline = time.monotonic() + 300
    while not client.responses.retrieve(response.id).output_text:
        assert time.monotonic() < deadline, "the background response never started"
        time.sleep(0.2)
    return response.id


def stop(server: ServerProcess, sig: signal.Signals) -> None:
    server.process.send_signal(sig)
    server.process.wait(timeout=60)


@pytest.fixture(scope="module")
def first_life(data_dir: Path) -> Iterator[dict[str, Any]]:
    with running_server(*ONE_LANE, "--data-dir", str(data_dir)) as server, client_for(server) as client:
        done = client.responses.create(model=MODEL, input="What is 2+2? Answer in one short sentence.",
                                       temperature=0, max_output_tokens=40)
        running = start_long_background(client)
        with pytest.raises(openai.RateLimitError) as refused:
            client.responses.create(model=MODEL, input="Hi", background=True, max_output_tokens=16)
        second = subprocess.run([sys.executable, "-m", "streamserve", "serve", "--port", "0", "--data-dir",
                                 str(data_dir)], capture_output=True, text=True, timeout=120)
        stop(server, signal.SIGKILL)
        yield {"done": done, "running": running, "refused": refused.value, "second": second}


def test_background_responses_count_against_admission(first_life: dict[str, Any]) -> None:
    refused: openai.RateLimitError = first_life["refused"]
    assert refused.status_code == 429 and refused.response.headers.get("retry-after")


def test_a_second_server_on_the_same_data_dir_refuses_to_start(first_life: dict[str, Any], data_dir: Path) -> None:
    second: subprocess.CompletedProcess[str] = first_life["second"]
    assert second.returncode == 2, second.stderr  # refused before binding a port, like a bad flag
    assert "another streamserve" in second.stderr and str(data_dir) in second.stderr
    assert "Traceback" not in second.stdout + second.stderr


@pytest.fixture(scope="module")
def second_life(first_life: dict[str, Any], data_dir: Path) -> Iterator[dict[str, Any]]:
    # A short grace: the long background response is still running when the drain ends.
    args = (*ONE_LANE, "--data-dir", str(data_dir), "--shutdown-timeout", "1s")
    with running_server(*args) as server, client_for(server) as client:
        killed = client.responses.retrieve(first_life["running"])
        killed_log = list(client.responses.retrieve(first_life["running"], stream=True))
        done = client.responses.retrieve(first_life["done"].id)
        chained = client.responses.create(model=MODEL, input="Again, please.", previous_response_id=done.id,
                                          temperature=0, max_output_tokens=16)
        running = start_long_background(client)
        stop(server, signal.SIGINT)
        yield {"killed": killed, "killed_log": killed_log, "done": done, "chained": chained,
               "running": running, "log": server.log()}


def test_a_response_running_when_the_server_was_killed_is_failed_after_restart(second_life: dict[str, Any]) -> None:
    killed = second_life["killed"]
    assert killed.status == "failed" and killed.error is not None
    assert killed.error.code == "server_error" and "restarted" in killed.error.message
    log = second_life["killed_log"]
    assert [e.sequence_number for e in log] == list(range(len(log)))
    assert log[-1].type == "response.failed" and log[-1].response.status == "failed"
    assert any(e.type == "response.output_text.delta" for e in log)
    assert "marked 1 responses left running" in second_life["log"]


def test_a_completed_response_survives_the_restart_and_can_be_chained(first_life: dict[str, Any],
                                                                      second_life: dict[str, Any]) -> None:
    before, after = first_life["done"], second_life["done"]
    assert after.status == before.status == "completed" and after.output_text == before.output_text != ""
    assert after.output[0].id == before.output[0].id and after.usage == before.usage
    chained = second_life["chained"]
    assert chained.previous_response_id == before.id and chained.output_text
    assert chained.usage.input_tokens > before.usage.input_tokens + before.usage.output_tokens


def poll_until(check: Any, deadline_s: float) -> float:
    """Call ``check()`` until it returns True; the seconds it took (fails after ``deadline_s``)."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < deadline_s
        time.sleep(0.25)
    return time.monotonic() - start


@pytest.fixture(scope="module")
def third_life(second_life: dict[str, Any], data_dir: Path) -> Iterator[dict[str, Any]]:
    args = (*ONE_LANE, "--data-dir", str(data_dir), "--store-ttl", "40s", "--store-events-ttl", "2s",
            "--store-sweep-interval", "1s")
    with running_server(*args) as server, client_for(server) as client:
        stopped = client.responses.retrieve(second_life["running"])
        short = client.responses.create(model=MODEL, input="Hi", background=True, temperature=0,
                                        max_output_tokens=16)
        poll_until(lambda: client.responses.retrieve(short.id).status not in ("queued", "in_progress"), 120)

        def log_gone() -> bool:
            try:
                list(client.responses.retrieve(short.id, stream=True))
            except openai.BadRequestError as exc:
                return bool(exc.body["param"] == "stream")
            except openai.NotFoundError:
                pytest.fail("the response expired before its event log (generation took over 38 s?)")
            return False

        def response_gone() -> bool:
            try:
                client.responses.retrieve(short.id)
            except openai.NotFoundError:
                return True
            return False

        poll_until(log_gone, 60)
        kept_without_log = not response_gone()
        poll_until(response_gone, 90)
        yield {"stopped": stopped, "kept_without_log": kept_without_log}


def test_a_stop_past_the_grace_fails_running_responses_with_their_partial_output(third_life: dict[str, Any]) -> None:
    stopped = third_life["stopped"]
    assert stopped.status == "failed" and stopped.error is not None and "shut down" in stopped.error.message
    assert stopped.output_text and stopped.output[0].status == "incomplete"
    assert stopped.usage is not None and stopped.usage.output_tokens > 0


def test_event_logs_expire_before_their_response_and_responses_after_the_store_ttl(
        third_life: dict[str, Any]) -> None:
    assert third_life["kept_without_log"]  # the loop above then saw the response itself swept (404)
