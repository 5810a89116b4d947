"""The soak's pure parts: the request plan, phases, verdicts, replay comparison, /metrics, RSS, summary, docs."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import pytest
from matplotlib.image import imread
from soaklib.doc import BEGIN, END, render_section, write_section
from soaklib.memory import RssSample, rss_growth
from soaklib.plan import LONG_PROMPT, PlannedRequest, phases, plan_requests
from soaklib.plot import plot_soak
from soaklib.run import SoakConfig, SoakRun, compare, engine_state, is_idle, run_soak
from soaklib.summary import hangup_phases, summarize
from soaklib.verdict import Outcome, evaluate

from streamserve.bench.client import BenchClient
from streamserve.bench.prometheus import parse_metrics
from streamserve.bench.record import RequestOptions, RequestRecord

from .wirestreams import events, stream


def test_the_plan_is_seeded_and_mixes_everything() -> None:
    plan = plan_requests(2000, model="m", seed=3)
    assert plan == plan_requests(2000, model="m", seed=3)
    assert plan != plan_requests(2000, model="m", seed=4)
    behaviours = collections.Counter(p.behaviour for p in plan)
    assert 150 <= behaviours["hangup"] <= 250 and 20 <= behaviours["slow"] <= 60
    assert {p.endpoint for p in plan} == {"chat", "completions"}
    assert {p.n for p in plan} == {1, 2, 3, 4}
    bodies = [p.body for p in plan]
    assert all(b["stream"] is True and b["model"] == "m" for b in bodies)
    assert sum("stop" in b for b in bodies) > 300 and sum("logprobs" in b for b in bodies) > 250
    assert sum("stream_options" in b for b in bodies) > 1000 and sum("seed" in b for b in bodies) > 100
    assert sum("max_completion_tokens" in b for b in bodies) > 20
    assert 0.6 < sum(p.greedy for p in plan) / len(plan) < 0.8
    early = [p for p in plan if p.read.hangup_after_s is not None]
    assert early and sum(p.prompt == LONG_PROMPT for p in early) >= len(early) // 5
    assert all(p.read.keep_events for p in plan)


def test_phases_cycle_through_the_levels_and_sum_to_the_total() -> None:
    split = phases(500, (1, 32, 4), per_level=10, minimum=20)
    assert split[:4] == [(1, 20), (32, 320), (4, 40), (1, 20)]
    assert sum(size for _, size in split) == 500
    assert phases(5, (8,)) == [(8, 5)]
    with pytest.raises(ValueError):
        phases(0, (1,))


def _record(chunks: list[dict], *, done: bool = True, **fields: object) -> RequestRecord:  # type: ignore[type-arg]
    values: dict[str, object] = {"ok": True, **fields}
    return RequestRecord(stream=True, status=200, content_type="text/event-stream; charset=utf-8",
                         events=events(chunks, done=done), start=1.0, e2e=2.0, **values)  # type: ignore[arg-type]


def test_evaluate_complete_hung_up_and_failed() -> None:
    planned = plan_requests(1, model="m")[0]
    body = {"model": "m", "messages": [], "stream": True, "max_tokens": 3, "temperature": 0.0}
    planned = type(planned)(0, "chat", "p", body, "normal", planned.read)
    outcome = evaluate(planned, _record(stream()), level=4)
    assert outcome.status == "complete" and outcome.violations == [] and outcome.texts == ["Hello!"]
    assert (outcome.start, outcome.end, outcome.level, outcome.finish) == (1.0, 3.0, 4, ["length"])

    hung = evaluate(planned, _record(stream()[:2], done=False, hung_up=True, ok=False, hung_up_at=0.5), level=4)
    assert hung.status == "hung_up" and hung.violations == [] and hung.saw_content

    refused = RequestRecord(stream=True, status=429, error="HTTP 429: full",
                            error_body={"error": {"message": "full", "type": "rate_limit_error", "param": None,
                                                  "code": "rate_limit_exceeded"}})
    failed = evaluate(planned, refused, level=1)
    assert failed.status == "error" and failed.error_kind == "HTTP 429 rate_limit_exceeded" and failed.violations == []
    bare = evaluate(planned, RequestRecord(stream=True, status=500, error_body={"detail": "x"}), level=1)
    assert [v.rule for v in bare.violations] == ["error"]

    cut_record = _record(stream()[:2], done=False, ok=False, error="RemoteProtocolError: peer closed")
    cut = evaluate(planned, cut_record, level=1)
    assert cut.status == "error" and cut.error_kind == "RemoteProtocolError: peer closed"
    assert {v.rule for v in cut.violations} == {"framing", "finish"}  # the server cut a stream short

    planned_usage = type(planned)(0, "completions", "p", {**body, "prompt": "x", "stream_options":
                                                          {"include_usage": True}}, "normal", planned.read)
    legacy = evaluate(planned_usage, _record(stream(chat=False, usage=True)), level=1)
    assert legacy.status == "complete" and legacy.violations == [] and legacy.completion_tokens == 3
    dropped = _record(stream(chat=False, usage=True))
    dropped.events = [dropped.events[0], *dropped.events[2:]]  # a content chunk lost on the way
    legacy_max4 = type(planned)(0, "completions", "p", {**planned_usage.body, "max_tokens": 3}, "normal", planned.read)
    hole = evaluate(legacy_max4, dropped, level=1)  # 2 chunks within 3 tokens: only a replay can tell
    assert hole.violations == [] and hole.texts == ["Hel!"] and dropped.events == []  # events released


def _outcome(number: int, start: float, end: float, *, n: int = 1, status: str = "complete",
             hung_up_at: float | None = None, content: int = 0, texts: list[str] | None = None) -> Outcome:
    return Outcome(number, "chat", "p", "hangup" if status == "hung_up" else "normal", 8, n, True,
                   status, start, end, texts=texts, hung_up_at=hung_up_at, content_chunks=content,
                   saw_content=content > 0)


def test_hangup_phases() -> None:
    outcomes = [_outcome(0, 0.0, 10.0, n=2), _outcome(1, 0.1, 10.0),
                _outcome(2, 1.0, 1.5, status="hung_up", hung_up_at=0.5),
                _outcome(3, 20.0, 21.0, status="hung_up", hung_up_at=1.0),
                _outcome(4, 30.0, 31.0, status="hung_up", hung_up_at=1.0, content=3)]
    assert hangup_phases(outcomes, lanes=3) == {"queued (estimated)": 1, "before the first token": 1, "decoding": 1}
    assert hangup_phases(outcomes, lanes=None) == {"before the first token": 2, "decoding": 1}


def test_compare_finds_the_first_difference() -> None:
    original = _outcome(0, 0, 1, n=2, texts=["same", "abcdef"])
    assert compare(original, _outcome(0, 0, 1, n=2, texts=["same", "abcdef"])).matched
    replay = compare(original, _outcome(0, 0, 1, n=2, texts=["same", "abcXef"]))
    assert not replay.matched and replay.mismatch is not None
    assert (replay.mismatch["choice"], replay.mismatch["at_char"]) == (1, 3)
    assert not compare(original, _outcome(0, 0, 1, status="error")).matched


METRICS = """# HELP streamserve:num_requests_running Sequences in a lane, generating.
# TYPE streamserve:num_requests_running gauge
streamserve:num_requests_running 0.0
streamserve:num_requests_waiting 0.0
streamserve:lanes_free 7.0
streamserve:lanes 8.0
streamserve:aborted_sequences_total{phase="waiting"} 3.0
streamserve:aborted_sequences_total{phase="prefill"} 1.0
streamserve:aborted_sequences_total{phase="decode"} 12.0
streamserve:request_success_total{finished_reason="stop"} 4.0
"""


def test_metrics_and_idle() -> None:
    values = parse_metrics(METRICS)
    assert values["streamserve:lanes"] == 8.0
    assert values['streamserve:request_success_total{finished_reason="stop"}'] == 4
    state = engine_state(values)
    assert state["aborted"] == {"waiting": 3.0, "prefill": 1.0, "decode": 12.0}
    assert not is_idle(state)  # a lane is still held
    assert is_idle(engine_state(parse_metrics(METRICS.replace("lanes_free 7.0", "lanes_free 8.0"))))
    assert is_idle(engine_state({"streamserve:num_requests_running": 0, "streamserve:num_requests_waiting": 0}))


def test_rss_growth() -> None:
    flat = [RssSample(t, 100 * 2**20 + (t % 3) * 2**10, int(t)) for t in range(100)]
    growth = rss_growth(flat, warmup_completed=10)
    assert growth.samples_after_warmup == 90 and abs(growth.growth_pct or 0) < 0.01
    leaking = [RssSample(t, (100 + t) * 2**20, int(t)) for t in range(100)]
    leak = rss_growth(leaking, warmup_completed=10)
    assert leak.baseline_mb == 114.5 and leak.growth_pct is not None and leak.growth_pct > 50
    assert rss_growth(flat[:1], warmup_completed=0).growth_pct is None


def _run() -> SoakRun:
    run = SoakRun(SoakConfig(requests=4, lanes=2))
    run.outcomes = [_outcome(0, 0.0, 1.0, texts=["a"]), _outcome(1, 0.0, 2.0, n=2, texts=["b", "b"]),
                    _outcome(2, 0.5, 0.7, status="hung_up", hung_up_at=0.2)]
    run.outcomes[1].violations = []
    failed = _outcome(3, 1.0, 2.0, status="error")
    failed.error_kind = "timeout: not complete after N s"
    run.outcomes.append(failed)
    run.replays = [compare(run.outcomes[0], _outcome(0, 0, 1, texts=["a"])),
                   compare(run.outcomes[1], _outcome(1, 0, 1, n=2, texts=["b", "c"]))]
    run.phases = [{"level": 2, "requests": 4, "start": 0.0, "end": 2.0}]
    idle = {"running": 0.0, "waiting": 0.0, "lanes_free": 2.0, "lanes": 2.0, "idle": True, "waited_s": 0.0,
            "aborted": {"waiting": 1.0, "prefill": 0.0, "decode": 2.0}}
    run.idle_after_load = run.idle_at_end = idle
    run.duration = 3.0
    return run


def test_summary_docs_section_and_plot(tmp_path: Path) -> None:
    record = summarize(_run(), command="python benchmarks/soak.py --requests 4", server={"args": ["streamserve"]})
    assert record["requests"]["sent"] == 4 and record["requests"]["hung_up"] == 1
    assert record["errors"] == {"total": 1, "by_kind": {"timeout: not complete after N s": 1}}
    assert record["replay"]["compared"] == 2 and record["replay"]["matched"] == 1
    assert record["replay"]["mismatches"][0]["at_char"] == 0
    assert record["disconnects"]["server_aborted_sequences"] == {"waiting": 1, "prefill": 0, "decode": 2}
    assert record["consistency"]["greedy_n_above_1_choices_identical"] == 1
    assert record["checks"] == {"no_errors": False, "no_wire_violations": True, "nothing_lost_or_duplicated": True,
                                "engine_idle_after_load": True, "rss_growth_under_target": None}

    section = render_section(record, json_path="docs/soak.json", plot_path="images/soak.png")
    assert section.startswith(BEGIN) and section.rstrip().endswith(END)
    assert "python benchmarks/soak.py --requests 4" in section and "1 of 2 identical (50.0%)" in section
    page = tmp_path / "reliability.md"
    write_section(page, section)
    assert page.read_text().startswith("# Reliability\n")
    page.write_text(page.read_text() + "\n## Fuzzing\n\nkept as it is\n")
    write_section(page, section.replace("1 of 2", "2 of 2"))
    text = page.read_text()
    assert text.count(BEGIN) == 1 and "2 of 2 identical" in text and "kept as it is" in text

    plot = tmp_path / "soak.png"
    plot_soak(record, plot)
    assert imread(str(plot)).ndim == 3


def _greedy_plan(count: int) -> list[PlannedRequest]:
    plan = [p for p in plan_requests(60, model="fake-model", seed=3, hangup_rate=0.0, slow_rate=0.0)
            if p.greedy and p.prompt != LONG_PROMPT][:count]
    for planned in plan:  # the fake server answers one plain choice
        for key in ("n", "stop", "logprobs", "top_logprobs"):
            planned.body.pop(key, None)
    return plan


@pytest.mark.parametrize(("replay_duration", "replayed"), [(900.0, 1), (0.0, 0)])
def test_replays_have_their_own_budget_after_a_load_cut_by_its_duration(
        fake_url: str, replay_duration: float, replayed: int) -> None:
    """A load stopped by ``duration`` still leaves the replays ``replay_duration``, counted from their start.

    One at a time, the fake server's 37 streams take a few seconds; the load stops starting them after
    0.5 s, long after the first has started even on a loaded machine.
    """
    plan = _greedy_plan(37)
    config = SoakConfig(requests=len(plan), levels=(1,), per_level=1, minimum=1, replay=1, duration=0.5,
                        timeout=0.01, replay_duration=replay_duration)

    async def go() -> SoakRun:
        async with BenchClient(fake_url, options=RequestOptions(timeout=30.0)) as client:
            client.model = "fake-model"
            return await run_soak(client, plan, config, metrics_url=None, pid=None)

    run = asyncio.run(go())
    assert 1 <= len(run.outcomes) < len(plan)  # the load was cut by its duration
    assert len(run.replays) == replayed
    assert all(r.matched for r in run.replays), run.replays
