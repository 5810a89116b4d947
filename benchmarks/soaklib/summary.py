"""A soak run's figures: requests, disconnects, errors by kind, broken rules, replay, end state, RSS.

``summarize`` turns a ``SoakRun`` into the JSON record the docs section and the plot are made
from. It keeps every failed or rule-breaking request in full and only counts the rest, so the
record stays small. ``checks`` says which of the run's targets held.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any

from .memory import rss_growth
from .run import SoakRun
from .verdict import Outcome

RSS_TARGET_PCT = 5.0
_EXAMPLES = 20
_FAILURES_KEPT = 200
_RSS_POINTS = 600


def summarize(run: SoakRun, *, command: str, server: dict[str, Any]) -> dict[str, Any]:
    """The JSON record of ``run``; ``command`` is the command line that produced it."""
    outcomes = run.outcomes
    errors = collections.Counter(o.error_kind for o in outcomes if o.status == "error")
    record: dict[str, Any] = {
        "kind": "soak",
        "command": command,
        "server": server,
        "config": run.config.to_dict(),
        "duration_s": round(run.duration, 1),
        "requests": _requests(run),
        "disconnects": _disconnects(run),
        "slow_readers": _slow(outcomes),
        "errors": {"total": sum(errors.values()), "by_kind": dict(errors.most_common())},
        "wire": _wire(outcomes),
        "tokens": _tokens(outcomes),
        "consistency": _consistency(outcomes),
        "replay": _replay(run),
        "end_state": {"after_load": run.idle_after_load, "at_end": run.idle_at_end},
        "rss": _rss(run),
        "phases": run.phases,
        "failures": [o.to_dict() for o in outcomes if o.status == "error" or o.violations][:_FAILURES_KEPT],
    }
    record["checks"] = checks(record)
    return record


def checks(record: dict[str, Any]) -> dict[str, bool | None]:
    """Each target of the run and whether it held (None: not measured)."""
    end = record["end_state"]["after_load"]
    growth = record["rss"]["growth"]["growth_pct"]
    return {
        "no_errors": record["errors"]["total"] == 0,
        "no_wire_violations": record["wire"]["streams_with_violations"] == 0,
        "nothing_lost_or_duplicated": record["tokens"]["lost"] == 0 and record["tokens"]["duplicated"] == 0,
        "engine_idle_after_load": None if end is None else bool(end["idle"]),
        "rss_growth_under_target": None if growth is None else growth < RSS_TARGET_PCT,
    }


def _requests(run: SoakRun) -> dict[str, Any]:
    outcomes = run.outcomes
    statuses = collections.Counter(o.status for o in outcomes)
    return {
        "planned": run.config.requests,
        "sent": len(outcomes),
        "complete": statuses["complete"],
        "hung_up": statuses["hung_up"],
        "errors": statuses["error"],
        "choices": sum(o.n for o in outcomes),
        "by_endpoint": dict(collections.Counter(o.endpoint for o in outcomes)),
        "by_level": {str(k): v for k, v in sorted(collections.Counter(o.level for o in outcomes).items())},
        "with_n_above_1": sum(o.n > 1 for o in outcomes),
        "greedy": sum(o.greedy for o in outcomes),
        "completion_tokens": sum(o.completion_tokens or 0 for o in outcomes if o.status == "complete"),
    }


def hangup_phases(outcomes: Sequence[Outcome], lanes: int | None) -> dict[str, int]:
    """Where each hang-up landed, seen from the client: queued (estimated), before the first token, decoding.

    A request is counted as queued when the sequences of requests sent before it and still open
    at the hang-up fill every lane (the server admits in arrival order).
    """
    phases: collections.Counter[str] = collections.Counter()
    for hung in (o for o in outcomes if o.status == "hung_up"):
        at = hung.start + (hung.hung_up_at or 0.0)
        ahead = sum(o.n for o in outcomes if o.start < hung.start and o.end > at)
        if lanes is not None and ahead >= lanes and not hung.saw_content:
            phases["queued (estimated)"] += 1
        elif not hung.saw_content:
            phases["before the first token"] += 1
        else:
            phases["decoding"] += 1
    return dict(phases)


def _disconnects(run: SoakRun) -> dict[str, Any]:
    outcomes = run.outcomes
    planned = [o for o in outcomes if o.behaviour == "hangup"]
    before = (run.metrics_before or {})
    after = run.idle_after_load["aborted"] if run.idle_after_load else None
    server = None
    if after is not None:
        server = {phase: None if value is None else int(value - before.get(
            f'streamserve:aborted_sequences_total{{phase="{phase}"}}', 0.0)) for phase, value in after.items()}
    return {
        "planned": len(planned),
        "hung_up": sum(o.status == "hung_up" for o in outcomes),
        "finished_before_the_hangup_point": sum(o.status == "complete" for o in planned),
        "client_side_phase": hangup_phases(outcomes, run.config.lanes),
        "server_aborted_sequences": server,
    }


def _slow(outcomes: Sequence[Outcome]) -> dict[str, int]:
    slow = [o for o in outcomes if o.behaviour == "slow"]
    return {"planned": len(slow), "complete": sum(o.status == "complete" for o in slow)}


def _wire(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    by_rule: collections.Counter[str] = collections.Counter()
    examples = []
    for outcome in outcomes:
        rules = {v.rule for v in outcome.violations}
        by_rule.update(rules)
        examples += [[outcome.number, v.rule, v.detail] for v in outcome.violations[:2]]
    return {
        "streams_checked": len(outcomes),
        "streams_with_violations": sum(bool(o.violations) for o in outcomes),
        "streams_by_rule": dict(by_rule.most_common()),
        "examples": examples[:_EXAMPLES],
    }


def _tokens(outcomes: Sequence[Outcome]) -> dict[str, int]:
    def streams(rule: str) -> int:
        return sum(any(v.rule == rule for v in o.violations) for o in outcomes)

    return {
        "lost": streams("tokens.lost"),
        "duplicated": streams("tokens.duplicated"),
        "choices_cut_at_an_unfinished_character": sum(o.cut_choices for o in outcomes),
        "content_chunks": sum(o.content_chunks for o in outcomes if o.status == "complete"),
    }


def _consistency(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    counts: dict[str, set[int]] = collections.defaultdict(set)
    for o in outcomes:
        if o.prompt_tokens is not None:
            counts[f"{o.endpoint}/{o.prompt}"].add(o.prompt_tokens)
    greedy_n = [o for o in outcomes if o.texts is not None and o.n > 1]
    return {
        "prompt_tokens_differ": {key: sorted(values) for key, values in counts.items() if len(values) > 1},
        "greedy_n_above_1": len(greedy_n),
        "greedy_n_above_1_choices_identical": sum(len(set(o.texts or ())) == 1 for o in greedy_n),
    }


def _replay(run: SoakRun) -> dict[str, Any]:
    replays = run.replays
    compared = [r for r in replays if r.status == "complete"]
    matched = sum(r.matched for r in compared)
    return {
        "sampled": len(replays),
        "compared": len(compared),
        "matched": matched,
        "match_rate": matched / len(compared) if compared else None,
        "with_violations": sum(bool(r.violations) for r in replays),
        "mismatches": [
            {"number": r.number, "endpoint": r.endpoint, "prompt": r.prompt, "n": r.n, **(r.mismatch or {})}
            for r in compared if not r.matched
        ][:_EXAMPLES],
        "not_compared": [{"number": r.number, "status": r.status, "violations": r.violations[:2]}
                         for r in replays if r.status != "complete"][:_EXAMPLES],
    }


def _rss(run: SoakRun) -> dict[str, Any]:
    samples = run.rss.samples if run.rss else []
    warmup = int(run.config.warmup_fraction * len(run.outcomes))
    step = max(1, len(samples) // _RSS_POINTS)
    return {
        "pid": run.rss.pid if run.rss else None,
        "interval_s": run.config.rss_interval,
        "warmup_requests": warmup,
        "target_pct": RSS_TARGET_PCT,
        "growth": rss_growth(samples, warmup).to_dict(),
        "samples": [[round(s.t, 2), round(s.rss / 2**20, 2), s.completed] for s in samples[::step]],
    }
