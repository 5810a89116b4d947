"""A strict checker of one streamed OpenAI response, event by event, against the wire rules.

``check_stream`` takes the events a client received (``ReadPlan(keep_events=True)``) and the
request that produced them, and returns every rule broken plus what each choice said: its text,
finish reason, content chunks and logprobs. The rules are OpenAI's streaming behaviour as the
official client relies on it (``/work/shared/design.md``, "The wire, point by point"): framing,
one envelope per stream, one role chunk and one finish per choice, usage last and only when
asked, nothing after ``[DONE]``, logprobs in the asked shape and never ahead of the text.
Whether tokens were lost or duplicated is ``accounting``'s job, from the same results.
A stream the client hung up on is checked for what arrived (``complete=False``): no end rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from streamserve.bench.prompts import Endpoint
from streamserve.bench.sse import DONE_SENTINEL, SSEEvent

from .logprobs import LogprobsTrail

FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter"})
_OBJECT = {"chat": "chat.completion.chunk", "completions": "text_completion"}
_ID_PREFIX = {"chat": "chatcmpl-", "completions": "cmpl-"}
_COMPLETIONS_DEFAULT_MAX_TOKENS = 16  # OpenAI's documented default for legacy completions
_MAX_VIOLATIONS = 20


@dataclass(frozen=True)
class Violation:
    """One broken rule: ``rule`` names the family (``framing``, ``role``, ``usage``…), ``detail`` the case."""

    rule: str
    detail: str


@dataclass(frozen=True)
class StreamSpec:
    """What the request asked for, as far as the wire depends on it.

    ``max_tokens`` is the effective per-choice limit when the client can know it (None for a chat
    request without one); ``logprobs`` is the number of alternatives asked per token (chat
    ``top_logprobs``, legacy ``logprobs``), None when logprobs were not asked.
    """

    endpoint: Endpoint
    n: int = 1
    stop: tuple[str, ...] = ()
    max_tokens: int | None = None
    logprobs: int | None = None
    include_usage: bool = False
    greedy: bool = False
    ascii_prompt: bool = True

    @classmethod
    def from_body(cls, endpoint: Endpoint, body: dict[str, Any]) -> StreamSpec:
        """Read the spec off a request body."""
        stop = body.get("stop")
        stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
        if endpoint == "chat":
            max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
            logprobs = (body.get("top_logprobs") or 0) if body.get("logprobs") else None
            prompt = orjson.dumps(body.get("messages")).decode()
        else:
            max_tokens = body.get("max_tokens", _COMPLETIONS_DEFAULT_MAX_TOKENS)
            logprobs = body.get("logprobs")
            prompt = str(body.get("prompt"))
        options = body.get("stream_options") or {}
        penalties = any(body.get(k) for k in ("frequency_penalty", "presence_penalty", "logit_bias"))
        return cls(
            endpoint=endpoint,
            n=int(body.get("n") or 1),
            stop=tuple(s for s in stops if s),
            max_tokens=max_tokens,
            logprobs=logprobs,
            include_usage=bool(options.get("include_usage")),
            greedy=body.get("temperature") == 0 and not penalties,
            ascii_prompt=prompt.isascii(),
        )


@dataclass
class ChoiceResult:
    """What one choice said on the wire: its joined text, chunk counts, finish and logprobs trail."""

    index: int
    logprobs: LogprobsTrail
    text: str = ""
    role_chunks: int = 0
    content_chunks: int = 0
    empty_chunks: int = 0
    finish_reason: str | None = None
    finish_chunks: int = 0


@dataclass
class StreamCheck:
    """The verdict on one stream: broken rules, each choice's result, usage and any error event."""

    violations: list[Violation] = field(default_factory=list)
    choices: dict[int, ChoiceResult] = field(default_factory=dict)
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    chunks: int = 0
    saw_done: bool = False

    @property
    def ok(self) -> bool:
        """No rule broken."""
        return not self.violations


def check_stream(spec: StreamSpec, events: Sequence[SSEEvent], *, complete: bool = True) -> StreamCheck:
    """Check every event of one stream; with ``complete``, also the rules of a stream's end."""
    checker = _Checker(spec)
    for number, event in enumerate(events):
        checker.event(number, event)
    if complete:
        checker.end()
    return checker.result


class _Checker:
    """The state of one stream as its events are read in order."""

    def __init__(self, spec: StreamSpec) -> None:
        self.spec = spec
        chat = spec.endpoint == "chat"
        self.result = StreamCheck(choices={i: ChoiceResult(i, LogprobsTrail.new(chat=chat)) for i in range(spec.n)})
        self.envelope: tuple[Any, ...] | None = None
        self.usage_chunk_at: int | None = None
        self.error_at: int | None = None
        self.done_at: int | None = None

    def fail(self, rule: str, detail: str) -> None:
        if len(self.result.violations) < _MAX_VIOLATIONS:
            self.result.violations.append(Violation(rule, detail))

    def event(self, number: int, event: SSEEvent) -> None:
        if self.done_at is not None:
            self.fail("framing", f"event {number} after [DONE]: {event.data[:80]!r}")
            return
        if event.lines != (f"data: {event.data}",):
            self.fail("framing", f"event {number} is not exactly one 'data: ' line: {event.lines!r}"[:200])
        if not event.terminated:
            self.fail("framing", f"event {number} is not ended by a blank line")
        if event.data == DONE_SENTINEL:
            self.done_at = number
            self.result.saw_done = True
            return
        if self.error_at is not None:
            self.fail("error", f"event {number} follows an error event (only [DONE] may)")
        try:
            payload = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            self.fail("framing", f"event {number} is neither JSON nor [DONE]: {event.data[:80]!r}")
            return
        if not isinstance(payload, dict):
            self.fail("framing", f"event {number} is not a JSON object")
        elif payload.get("error") is not None:
            self.error_event(number, payload)
        else:
            self.chunk(number, payload)

    def error_event(self, number: int, payload: dict[str, Any]) -> None:
        self.error_at = number
        error = payload["error"]
        self.result.error = error if isinstance(error, dict) else {"message": str(error)}
        typed = isinstance(error, dict) and all(isinstance(error.get(k), str) for k in ("message", "type"))
        if not typed:
            self.fail("error", f"error event {number} lacks a string message and type: {payload!r}"[:200])
        if "choices" in payload:
            self.fail("error", f"error event {number} carries choices")

    def chunk(self, number: int, chunk: dict[str, Any]) -> None:
        spec = self.spec
        self.result.chunks += 1
        if self.usage_chunk_at is not None:
            self.fail("usage", f"chunk {number} follows the usage chunk (only [DONE] may)")
        self.check_envelope(number, chunk)
        usage = chunk.get("usage")
        if spec.include_usage and "usage" not in chunk:
            self.fail("usage", f"chunk {number} has no usage key although include_usage was asked")
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            self.fail("envelope", f"chunk {number} has no choices list")
            return
        if usage is not None:
            self.usage(number, usage, choices)
            return
        if not choices:
            self.fail("envelope", f"chunk {number} has empty choices and no usage")
        seen: set[int] = set()
        for choice in choices:
            index = choice.get("index") if isinstance(choice, dict) else None
            if not isinstance(index, int) or index not in self.result.choices:
                self.fail("choice", f"chunk {number}: a choice with index {index!r} (n={spec.n})")
                continue
            if index in seen:
                self.fail("choice", f"chunk {number}: index {index} twice")
            seen.add(index)
            self.choice(number, choice, self.result.choices[index])

    def check_envelope(self, number: int, chunk: dict[str, Any]) -> None:
        endpoint = self.spec.endpoint
        if chunk.get("object") != _OBJECT[endpoint]:
            self.fail("envelope", f"chunk {number}: object {chunk.get('object')!r}, expected {_OBJECT[endpoint]!r}")
        ident, created, model = chunk.get("id"), chunk.get("created"), chunk.get("model")
        if not (isinstance(ident, str) and ident.startswith(_ID_PREFIX[endpoint])):
            self.fail("envelope", f"chunk {number}: id {ident!r} does not start with {_ID_PREFIX[endpoint]!r}")
        if not isinstance(created, int) or not isinstance(model, str):
            self.fail("envelope", f"chunk {number}: created {created!r} / model {model!r} of the wrong type")
        fingerprint = chunk.get("system_fingerprint")
        if fingerprint is not None and not isinstance(fingerprint, str):
            self.fail("envelope", f"chunk {number}: system_fingerprint {fingerprint!r} is not a string")
        envelope = (ident, created, model, fingerprint)
        if self.envelope is None:
            self.envelope = envelope
        elif envelope != self.envelope:
            self.fail("envelope", f"chunk {number}: id/created/model/fingerprint {envelope!r} changed "
                                  f"from {self.envelope!r}")

    def usage(self, number: int, usage: Any, choices: list[Any]) -> None:
        if not self.spec.include_usage:
            self.fail("usage", f"chunk {number} carries usage although include_usage was not asked")
        if self.result.usage is not None:
            self.fail("usage", f"chunk {number}: a second usage chunk")
        self.usage_chunk_at = number
        if choices:
            self.fail("usage", f"chunk {number}: the usage chunk has choices")
        unfinished = [c.index for c in self.result.choices.values() if c.finish_reason is None]
        if unfinished:
            self.fail("usage", f"chunk {number}: usage before the finish of choices {unfinished}")
        if not isinstance(usage, dict):
            self.fail("usage", f"chunk {number}: usage {usage!r} is not an object")
            return
        self.result.usage = usage
        counts = [c for k in ("prompt_tokens", "completion_tokens", "total_tokens")
                  if isinstance(c := usage.get(k), int) and c >= 0]
        if len(counts) != 3:
            self.fail("usage", f"chunk {number}: usage counts {usage!r} are not non-negative integers"[:200])
            return
        prompt, completion, total = counts
        if total != prompt + completion:
            self.fail("usage", f"chunk {number}: total_tokens {total} != {prompt} + {completion}")
        details = usage.get("prompt_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        if cached is not None and not (isinstance(cached, int) and 0 <= cached <= prompt):
            self.fail("usage", f"chunk {number}: cached_tokens {cached!r} outside 0..prompt_tokens")

    def choice(self, number: int, choice: dict[str, Any], result: ChoiceResult) -> None:
        chat = self.spec.endpoint == "chat"
        where = f"chunk {number} choice {result.index}"
        required = ("index", "delta", "finish_reason") if chat else ("index", "text", "finish_reason")
        missing = [key for key in required if key not in choice]
        if missing:
            self.fail("choice", f"{where}: missing keys {missing}")
            return
        if result.finish_reason is not None:
            self.fail("finish", f"{where}: a chunk after the choice's finish")
        finish = choice["finish_reason"]
        if chat and result.role_chunks == 0:
            self.role(where, choice, result)
            return
        content = self.content_of(where, choice)
        if finish is not None:
            self.finish(where, choice, finish, content, result)
            return
        if chat and choice["delta"].get("role") is not None:
            self.fail("role", f"{where}: role sent again")
        if content is None:
            return
        result.text += content
        logprobs = choice.get("logprobs")
        entries = 0
        if logprobs is not None or self.spec.logprobs is not None:
            entries = self.logprobs(where, logprobs, result)
        if content:
            result.content_chunks += 1
        elif not entries:
            result.empty_chunks += 1

    def role(self, where: str, choice: dict[str, Any], result: ChoiceResult) -> None:
        result.role_chunks += 1
        delta = choice["delta"]
        if not isinstance(delta, dict) or delta.get("role") != "assistant" or delta.get("content") != "":
            self.fail("role", f"{where}: the first chunk is not the role chunk (role assistant, content ''): "
                              f"{delta!r}"[:200])
            return
        extra = {k: v for k, v in delta.items() if k not in ("role", "content") and v is not None}
        if extra or choice["finish_reason"] is not None or choice.get("logprobs") is not None:
            self.fail("role", f"{where}: the role chunk carries more than role and '': {choice!r}"[:200])

    def content_of(self, where: str, choice: dict[str, Any]) -> str | None:
        if self.spec.endpoint == "chat":
            delta = choice["delta"]
            if not isinstance(delta, dict):
                self.fail("choice", f"{where}: delta {delta!r} is not an object")
                return None
            extra = {k: v for k, v in delta.items() if k not in ("content", "role") and v is not None}
            if extra:
                self.fail("choice", f"{where}: unexpected delta keys {sorted(extra)}")
            content = delta.get("content")
            if choice["finish_reason"] is None and not isinstance(content, str):
                self.fail("choice", f"{where}: delta.content {content!r} is not a string")
                return None
            return content if isinstance(content, str) else ""
        text = choice["text"]
        if not isinstance(text, str):
            self.fail("choice", f"{where}: text {text!r} is not a string")
            return None
        return text

    def finish(self, where: str, choice: dict[str, Any], finish: Any, content: str | None,
               result: ChoiceResult) -> None:
        result.finish_chunks += 1
        if result.finish_reason is not None:
            self.fail("finish", f"{where}: a second finish chunk ({finish!r} after {result.finish_reason!r})")
        result.finish_reason = str(finish)
        if finish not in FINISH_REASONS:
            self.fail("finish", f"{where}: finish_reason {finish!r}")
        if self.spec.endpoint == "chat" and choice["delta"] != {}:
            self.fail("finish", f"{where}: the finish chunk's delta is {choice['delta']!r}, not {{}}")
        if content:
            self.fail("finish", f"{where}: the finish chunk carries content {content!r}")
        if choice.get("logprobs") is not None:
            self.fail("finish", f"{where}: the finish chunk carries logprobs")

    def logprobs(self, where: str, logprobs: Any, result: ChoiceResult) -> int:
        """Check one content chunk's logprobs; return how many token entries it listed."""
        spec = self.spec
        if spec.logprobs is None:
            self.fail("logprobs", f"{where}: logprobs sent although not asked")
            return 0
        return result.logprobs.take(self.fail, where, logprobs, result.text, k=spec.logprobs, greedy=spec.greedy)

    def end(self) -> None:
        if self.done_at is None:
            self.fail("framing", "the stream did not end with [DONE]")
        if self.error_at is not None:
            return
        for choice in self.result.choices.values():
            if self.spec.endpoint == "chat" and choice.role_chunks != 1:
                self.fail("role", f"choice {choice.index}: {choice.role_chunks} role chunks")
            if choice.finish_chunks != 1:
                self.fail("finish", f"choice {choice.index}: {choice.finish_chunks} finish chunks")
            for stop in self.spec.stop:
                if stop in choice.text:
                    self.fail("stop", f"choice {choice.index}: the text contains the stop string {stop!r}")
        if self.spec.include_usage and self.result.usage is None:
            self.fail("usage", "include_usage was asked but no usage chunk came")
