"""The verdict on one soak request: how it ended, why it failed, and every wire or accounting rule broken.

``evaluate`` turns a planned request and the client's record of it into an ``Outcome`` small
enough to keep thousands of (the events themselves are dropped once checked). A stream the
client read to its end is checked strictly, end rules included, even when the server cut it
short; a stream the client hung up on, or gave up on after its timeout, is checked for what
arrived.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from streamserve.bench.record import RequestRecord

from .accounting import account
from .plan import PlannedRequest
from .wire import StreamCheck, StreamSpec, Violation, check_stream

Status = Literal["complete", "hung_up", "error"]

_ERROR_KEYS = ("message", "type", "param", "code")


@dataclass
class Outcome:
    """One request's end as the soak keeps it; times are seconds from the run's start."""

    number: int
    endpoint: str
    prompt: str
    behaviour: str
    level: int
    n: int
    greedy: bool
    status: Status
    start: float
    end: float
    error_kind: str | None = None
    violations: list[Violation] = field(default_factory=list)
    texts: list[str] | None = None
    """Each choice's text, kept for complete greedy streams (the replay compares them)."""
    finish: list[str | None] = field(default_factory=list)
    completion_tokens: int | None = None
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    content_chunks: int = 0
    cut_choices: int = 0
    hung_up_at: float | None = None
    saw_content: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (texts left out)."""
        return {
            "number": self.number, "endpoint": self.endpoint, "prompt": self.prompt, "behaviour": self.behaviour,
            "level": self.level, "n": self.n, "greedy": self.greedy, "status": self.status,
            "start": round(self.start, 4), "end": round(self.end, 4), "error_kind": self.error_kind,
            "violations": [[v.rule, v.detail] for v in self.violations], "finish": self.finish,
            "completion_tokens": self.completion_tokens, "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens, "content_chunks": self.content_chunks,
            "cut_choices": self.cut_choices, "hung_up_at": self.hung_up_at,
        }


def evaluate(planned: PlannedRequest, record: RequestRecord, *, level: int) -> Outcome:
    """Check one request's record; the record's events are released afterwards."""
    spec = StreamSpec.from_body(planned.endpoint, planned.body)
    outcome = Outcome(
        number=planned.number, endpoint=planned.endpoint, prompt=planned.prompt, behaviour=planned.behaviour,
        level=level, n=spec.n, greedy=planned.greedy, status="error", start=record.start,
        end=record.start + (record.e2e or 0.0), hung_up_at=record.hung_up_at,
    )
    if record.status is not None and record.status >= 400:
        outcome.error_kind = _http_kind(record)
        outcome.violations += _envelope_violations(record)
        return outcome
    timed_out = (record.error or "").startswith("timeout")
    complete = not record.hung_up and not timed_out
    check = check_stream(spec, record.events, complete=complete)
    outcome.violations += check.violations
    if record.status == 200 and not (record.content_type or "").startswith("text/event-stream"):
        outcome.violations.append(Violation("framing", f"Content-Type {record.content_type!r}"))
    _take(outcome, check)
    record.events = []
    finished = all(c.finish_reason is not None for c in check.choices.values())
    if complete and check.error is None and check.saw_done and finished:
        accounting = account(spec, check)
        outcome.violations += accounting.violations
        outcome.cut_choices = accounting.cut_choices
    if record.hung_up:
        outcome.status = "hung_up"
    elif record.ok and check.error is None:
        outcome.status = "complete"
        if outcome.greedy:
            outcome.texts = [check.choices[i].text for i in range(spec.n)]
    else:
        outcome.error_kind = _stream_kind(record, check)
    return outcome


def _take(outcome: Outcome, check: StreamCheck) -> None:
    choices = [check.choices[i] for i in sorted(check.choices)]
    outcome.finish = [c.finish_reason for c in choices]
    outcome.content_chunks = sum(c.content_chunks for c in choices)
    outcome.saw_content = outcome.content_chunks > 0
    usage = check.usage or {}
    tokens, prompt = usage.get("completion_tokens"), usage.get("prompt_tokens")
    outcome.completion_tokens = tokens if isinstance(tokens, int) else None
    outcome.prompt_tokens = prompt if isinstance(prompt, int) else None
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    outcome.cached_tokens = cached if isinstance(cached, int) else None


def _normalized(text: str, limit: int = 80) -> str:
    """An error message with its numbers replaced, so that errors of one kind count together."""
    return re.sub(r"\d+(\.\d+)?", "N", text)[:limit]


def _http_kind(record: RequestRecord) -> str:
    error = record.error_body.get("error") if isinstance(record.error_body, dict) else None
    if isinstance(error, dict):
        return f"HTTP {record.status} {error.get('code') or error.get('type')}"
    return f"HTTP {record.status}"


def _envelope_violations(record: RequestRecord) -> list[Violation]:
    error = record.error_body.get("error") if isinstance(record.error_body, dict) else None
    if not isinstance(error, dict) or any(key not in error for key in _ERROR_KEYS):
        return [Violation("error", f"HTTP {record.status} body is not OpenAI's error envelope: "
                                   f"{record.error_body!r}"[:200])]
    if not isinstance(error["message"], str) or not isinstance(error["type"], str):
        return [Violation("error", f"HTTP {record.status}: error message/type are not strings")]
    return []


def _stream_kind(record: RequestRecord, check: StreamCheck) -> str:
    if check.error is not None:
        return _normalized(f"error event: {check.error.get('type')}: {check.error.get('message')}")
    return _normalized(record.error or "not complete")
