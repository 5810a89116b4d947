"""Two replicas sharing one PostgreSQL store behind SMG, on 127.0.0.1: the recipe of docs/scale-out.md, checked.

One throwaway PostgreSQL cluster, two replicas (``--threads 1 --max-num-seqs 2``, a 3 s lease) and SMG in
round robin, shared by the module:

- a response made on replica A is retrieved, listed, continued (its ``input_tokens`` include the history)
  and deleted on B; a background one made on A is cancelled from B; a background stream started on A
  and dropped is resumed on B from ``starting_after`` with every event exactly once;
- requests through SMG reach both replicas, and a conversation continues through it whichever replica
  each turn lands on;
- through SMG's ``cache_aware`` policy (spill thresholds sized to 2 lanes), 16 requests over two long
  system prompts keep a prompt-cache hit share of at least 0.95x that of one replica alone, and 16
  concurrent ones put at least 30% of the traffic on each replica;
- SIGTERM to a replica under a steady load through SMG: no request fails; it restarts and rejoins;
- ``kill -9`` of a replica mid-stream: the client's stream (through SMG) ends within 5 s, new requests through SMG
  succeed within 5 s, its background response is ``failed`` (replica lost, partial output kept) within
  the lease bound; restarted, it serves again.

SMG answers ``GET``/``DELETE /v1/responses/{id}`` itself (its own history store) instead of forwarding
them, so those go to a replica directly, as docs/scale-out.md says.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.e2e.scaleout import Replica, Router, wait_until
from tests.pgcluster import Cluster

pytestmark = pytest.mark.e2e

MODEL = "smollm2-135m-instruct"
LEASE_S = 3.0
COUNT = "Count from 1 to 1000, separated by commas."


@pytest.fixture(scope="module")
def replicas(pg_cluster: Cluster) -> Iterator[tuple[Replica, Replica]]:
    url = pg_cluster.new_database("scaleout")
    args = ("--store", url, "--store-lease", f"{LEASE_S:g}s", "--threads", "1", "--max-num-seqs", "2",
            "--max-model-len", "1024", "--shutdown-timeout", "20s", "--no-playground")
    pair = (Replica("a", args), Replica("b", args))
    try:
        for replica in pair:
            replica.start()
        yield pair
    finally:
        for replica in pair:
            replica.remove()


@pytest.fixture(scope="module")
def router(replicas: tuple[Replica, Replica]) -> Iterator[Router]:
    smg = Router(list(replicas), "round_robin")
    try:
        yield smg
    finally:
        smg.stop()


def client(base_url: str, timeout: float = 120.0) -> OpenAI:
    return OpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=timeout)


def served(replica: Replica) -> float:
    """Requests this replica has finished, from its /metrics."""
    text = httpx.get(replica.url + "/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("streamserve:request_success_total"))


def running(replica: Replica) -> float:
    """Sequences generating on this replica now (vLLM's gauge)."""
    text = httpx.get(replica.url + "/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vllm:num_requests_running"))


def events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The JSON data of each named SSE event of a streamed response."""
    for line in response.iter_lines():
        if line.startswith("data: "):
            yield json.loads(line[6:])


def test_a_response_made_on_a_is_retrieved_listed_continued_and_deleted_on_b(
        replicas: tuple[Replica, Replica]) -> None:
    a, b = (client(r.base_url) for r in replicas)
    first = a.responses.create(model=MODEL, input="My name is Ada. Say hi.", max_output_tokens=16, temperature=0)
    got = b.responses.retrieve(first.id)
    assert got.id == first.id and got.output_text == first.output_text and got.status == first.status
    items = b.responses.input_items.list(first.id)
    assert [item.id for item in items.data] and items.data[0].type == "message"
    follow = b.responses.create(model=MODEL, input="What is my name?", previous_response_id=first.id,
                                max_output_tokens=16, temperature=0)
    assert first.usage is not None and follow.usage is not None
    assert follow.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    assert a.responses.retrieve(follow.id).previous_response_id == first.id
    b.responses.delete(first.id)
    with pytest.raises(Exception, match="not found"):
        a.responses.retrieve(first.id)


def test_a_background_response_on_a_is_cancelled_from_b(replicas: tuple[Replica, Replica]) -> None:
    a, b = (client(r.base_url) for r in replicas)
    started = a.responses.create(model=MODEL, input=COUNT, background=True, max_output_tokens=600, temperature=0)
    wait_until(lambda: a.responses.retrieve(started.id).status == "in_progress", "background started",
               deadline_s=60)
    began = time.monotonic()
    cancelled = b.responses.cancel(started.id)
    assert cancelled.status == "cancelled" and time.monotonic() - began < 5
    assert a.responses.retrieve(started.id).status == "cancelled"
    assert b.responses.cancel(started.id).status == "cancelled"  # idempotent


def test_a_background_stream_from_a_resumes_on_b_with_every_event_once(
        replicas: tuple[Replica, Replica]) -> None:
    a, b = replicas
    body = {"model": MODEL, "input": COUNT, "background": True, "stream": True, "max_output_tokens": 120,
            "temperature": 0}
    with httpx.Client(timeout=120) as http:
        seen: list[dict[str, Any]] = []
        with http.stream("POST", a.base_url + "/responses", json=body) as response:
            for event in events(response):
                seen.append(event)
                if len(seen) == 8:
                    break  # the client drops the stream; the background response goes on
        rid, cursor = seen[0]["response"]["id"], seen[-1]["sequence_number"]
        with http.stream("GET", f"{b.base_url}/responses/{rid}",
                         params={"stream": "true", "starting_after": cursor}) as response:
            assert response.status_code == 200
            rest = list(events(response))
        numbers = [e["sequence_number"] for e in seen + rest]
        assert numbers == list(range(len(numbers))), "an event was lost or repeated"
        assert rest[-1]["type"] == "response.incomplete"
        text = "".join(e["delta"] for e in seen + rest if e["type"] == "response.output_text.delta")
        final = client(a.base_url).responses.retrieve(rid)
        assert final.output_text == text
        with http.stream("GET", f"{a.base_url}/responses/{rid}", params={"stream": "true"}) as response:
            assert [e["sequence_number"] for e in events(response)] == numbers  # the stored log, same events


def test_requests_through_smg_reach_both_replicas_and_a_conversation_continues_through_it(
        replicas: tuple[Replica, Replica], router: Router) -> None:
    before = [served(r) for r in replicas]
    smg = client(router.base_url)
    previous = None
    for turn in range(4):
        response = smg.responses.create(model=MODEL, input=f"Turn {turn}: say a word.", max_output_tokens=16,
                                        temperature=0, previous_response_id=previous)
        assert response.status == "incomplete" or response.status == "completed"
        previous = response.id
    for _ in range(2):
        smg.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=8)
    after = [served(r) for r in replicas]
    assert all(later - earlier >= 2 for earlier, later in zip(before, after, strict=True)), (before, after)
    chain = client(replicas[0].base_url).responses.input_items.list(previous)
    assert chain.data  # stored once, readable from any replica


PREFIXES = [f"You are assistant {k}. " + " ".join(f"Rule {k}.{i}: answer topic {k * 31 + i} briefly and politely."
                                                   for i in range(12)) for k in range(2)]
"""Two long system prompts (about 200 tokens each, one replica's two lanes hold both), distinct from the start."""


def cache_counts(replica: Replica) -> tuple[float, float]:
    """(prompt tokens looked up, found) in this replica's prompt cache, from vLLM's counters."""
    text = httpx.get(replica.url + "/metrics", timeout=5).text
    values = {line.split("{")[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith(("vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total"))}
    return values["vllm:prefix_cache_queries_total"], values["vllm:prefix_cache_hits_total"]


def hit_share(replicas: tuple[Replica, ...], work: Any) -> float:
    """The share of prompt tokens served from the prompt cache while ``work()`` runs, over these replicas."""
    before = [cache_counts(r) for r in replicas]
    work()
    after = [cache_counts(r) for r in replicas]
    queries = sum(b[0] - a[0] for a, b in zip(before, after, strict=True))
    hits = sum(b[1] - a[1] for a, b in zip(before, after, strict=True))
    return hits / queries


def ask(base_url: str, prefix: str, question: int) -> None:
    client(base_url).chat.completions.create(
        model=MODEL, max_tokens=2, temperature=0,
        messages=[{"role": "system", "content": prefix}, {"role": "user", "content": f"Question {question}?"}])


def test_cache_aware_routing_keeps_the_prompt_cache_and_spreads_concurrent_load(
        replicas: tuple[Replica, Replica], router: Router) -> None:
    order = [(k, q) for q in range(8) for k in (0, 1)]  # 16 requests, the prefixes interleaved
    marks = [time.monotonic()]
    alone = hit_share(replicas, lambda: [ask(replicas[0].base_url, "Alone. " + PREFIXES[k], q) for k, q in order])
    marks.append(time.monotonic())
    smg = Router(list(replicas), "cache_aware", "--balance-abs-threshold", "1", "--balance-rel-threshold", "1.2")
    try:
        routed = hit_share(replicas, lambda: [ask(smg.base_url, PREFIXES[k], q) for k, q in order])
        marks.append(time.monotonic())
        before = [served(r) for r in replicas]
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda kq: ask(smg.base_url, PREFIXES[kq[0]], 100 + kq[1]), order))
        shares = [(served(r) - b) / 16 for r, b in zip(replicas, before, strict=True)]
        marks.append(time.monotonic())
    finally:
        smg.stop()
    print(f"hit share alone {alone:.2f}, cache_aware {routed:.2f}; concurrent split {shares}; "
          f"phases {[round(b - a, 1) for a, b in itertools.pairwise(marks)]} s")
    assert routed >= 0.95 * alone, (routed, alone)
    assert min(shares) >= 0.3, shares


def load(base_url: str, stop: threading.Event, results: list[str]) -> None:
    """Streamed chat requests one after the other until ``stop``; each outcome appended to ``results``."""
    smg = client(base_url, timeout=60)
    while not stop.is_set():
        try:
            stream = smg.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Count to 20."}],
                                                 max_tokens=24, stream=True)
            finish = None
            for chunk in stream:
                if chunk.choices and chunk.choices[0].finish_reason:
                    finish = chunk.choices[0].finish_reason
            results.append("ok" if finish in ("length", "stop") else f"no finish: {finish}")
        except Exception as exc:
            results.append(f"{type(exc).__name__}: {exc}")


def test_sigterm_to_a_replica_under_load_through_smg_fails_no_request(
        replicas: tuple[Replica, Replica], router: Router) -> None:
    stop, results = threading.Event(), []  # type: ignore[var-annotated]
    workers = [threading.Thread(target=load, args=(router.base_url, stop, results)) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(2.0)
        b = replicas[1]
        b.signal(signal.SIGTERM)
        assert b.process is not None
        b.process.wait(timeout=30)
        time.sleep(2.0)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=60)
    failures = [r for r in results if r != "ok"]
    assert len(results) >= 6 and not failures, (failures, router.log()[-3000:])
    b.start()
    wait_until(lambda: _routes_to(b, router), "the restarted replica serves through SMG", deadline_s=30)


def _routes_to(replica: Replica, router: Router) -> bool:
    before = served(replica)
    for _ in range(2):
        client(router.base_url).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}],
                                                        max_tokens=4)
    return served(replica) > before


def test_kill_9_mid_stream_ends_the_stream_reroutes_and_fails_the_background_response_within_the_lease(
        replicas: tuple[Replica, Replica], router: Router) -> None:
    a, b = replicas
    survivor = client(b.base_url)
    background = client(a.base_url).responses.create(model=MODEL, input=COUNT, background=True,
                                                     max_output_tokens=900, temperature=0)
    wait_until(lambda: bool(survivor.responses.retrieve(background.id).status == "in_progress"),
               "background running", deadline_s=60)
    smg_streams = client(router.base_url, timeout=30)
    chunks = None
    for _ in range(2):  # round robin: one of two consecutive streams lands on A
        stream = smg_streams.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": COUNT}], max_tokens=300, stream=True)
        candidate = iter(stream)
        for _ in range(3):
            next(candidate)
        if running(a) >= 2:  # the background response and this stream
            chunks = candidate
            break
    assert chunks is not None, "neither stream landed on replica A"
    ended = threading.Event()

    def drain() -> None:
        try:
            for _ in chunks:
                pass
        except Exception:
            pass
        ended.set()

    threading.Thread(target=drain, daemon=True).start()
    time.sleep(1.0)  # the background response has produced text
    a.signal(signal.SIGKILL)
    killed = time.monotonic()
    assert ended.wait(5.0), "the client's stream did not end within 5 s of the kill"
    smg = client(router.base_url, timeout=10)
    asked = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: smg.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=4), range(4)))
    assert all(answer.choices[0].finish_reason for answer in answers)
    assert time.monotonic() - asked < 5.0, "new requests through SMG did not all succeed within 5 s"
    wait_until(lambda: survivor.responses.retrieve(background.id).status == "failed",
               "the dead replica's background response failed", deadline_s=LEASE_S * 4 / 3 + 2.0)
    assert time.monotonic() - killed <= LEASE_S * 4 / 3 + 2.5
    failed = survivor.responses.retrieve(background.id)
    assert failed.error is not None and "replica" in failed.error.message and "lost" in failed.error.message
    assert failed.output_text  # the text generated before the kill is kept
    a.start()
    wait_until(lambda: _routes_to(a, router), "the restarted replica serves through SMG", deadline_s=30)
    assert survivor.responses.retrieve(background.id).status == "failed"  # the restart took nothing back
