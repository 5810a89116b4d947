"""Generation: engine token events -> neutral TextDelta / Finish / Usage events, shared by chat and completions.

Each choice runs one pipeline: detokenizer -> stop matcher (``ChoiceDecoder``) -> moderation hold-back
(``ModerationGate``, when the request is moderated).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

from streamserve.engine import EngineClient, FinishReason, GrammarError, SamplingParams, SequenceStream, TokenEvent
from streamserve.generation.detokenizer import IncrementalDetokenizer
from streamserve.generation.events import Event, Finish, LogprobEntry, ModerationScores, TextDelta, TopLogprob, Usage
from streamserve.generation.events import FinishReason as FinishReasonName
from streamserve.generation.gate import ModerationGate, ModerationPlan
from streamserve.generation.merge import merge
from streamserve.generation.stops import StopMatcher
from streamserve.generation.tool_calls import ToolCallParser
from streamserve.moderation import ModerationResult
from streamserve.prompting.errors import RequestError
from streamserve.prompting.structured import Opening
from streamserve.prompting.tokenizer import Tokenizer


@dataclass(frozen=True, slots=True)
class ChoiceRequest:
    """One choice to generate: its prompt, its sampling parameters, and text to echo before its output."""

    prompt_ids: list[int]
    params: SamplingParams
    echo: str | None = None


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """What to generate, in neutral terms: the choices, shared stop strings and the prompt token count.

    ``prompt_tokens`` counts each distinct prompt once (``n`` choices share one prompt).
    ``predicted``: the usage says how many drafted prediction tokens were accepted and rejected.
    ``tool_prefix`` None: the output is text; otherwise it is parsed for tool calls as if it
    followed ``tool_prefix`` (the call's opening the prompt already ends with, or "").
    """

    choices: list[ChoiceRequest]
    stop: tuple[str, ...]
    prompt_tokens: int
    moderation: ModerationPlan | None = None
    tool_prefix: str | None = None
    predicted: bool = False  # the choices carry a prediction: usage reports its accepted and rejected tokens

    @property
    def opening(self) -> Opening:
        """How each choice opens: text, a tool turn (a forced call), or as its first delta decides (``auto``)."""
        if self.tool_prefix is None:
            return "text"
        return "tool_call" if self.tool_prefix else "deferred"


class ChoiceDecoder:
    """Turns one choice's token events into text: complete UTF-8 only, stop strings held back and cut.

    With a ``ToolCallParser`` the text is first split into content and tool calls; stop strings apply
    to content only (a stop inside a call's JSON would break it). A token's logprobs entry is released
    with the delta that carries the token's last byte; tokens cut with a stop string, and the tokens of
    tool calls (which are not content), are never listed.
    """

    def __init__(self, index: int, tokenizer: Tokenizer, stop: tuple[str, ...], *, offset: int = 0,
                 calls: ToolCallParser | None = None) -> None:
        self.index = index
        self.tokenizer = tokenizer
        self.detokenizer = IncrementalDetokenizer()
        self.stops = StopMatcher(stop)
        self.calls = calls
        self.completion_tokens = 0
        self._decoded_chars = offset
        self._sent_chars = offset
        self._unsent = ""
        self._entries: deque[tuple[int, LogprobEntry]] = deque()

    def opening(self, prefix: str) -> list[Event]:
        """The events of text the prompt already holds (a named call's head): parsed, never counted."""
        return self._split(prefix) if self.calls is not None and prefix else []

    def push(self, event: TokenEvent) -> list[Event]:
        """The events this token produces: deltas, then a Finish if the choice ended."""
        if event.finish is FinishReason.EOG:
            return self._end("stop")
        self.completion_tokens += 1
        data = self.tokenizer.token_bytes(event.token_id)
        text = self.detokenizer.push(data)
        start = self._decoded_chars
        self._decoded_chars += len(text)
        if event.logprob is not None and not (self.calls is not None and self.calls.started):
            end = self._decoded_chars + (1 if self.detokenizer.pending else 0)
            self._entries.append((end, self._entry(event, data, start)))
        events = self._split(text)
        if self.stops.matched:
            return [*events, *self._delta(self._take()), Finish(self.index, "stop", self.stops.stop)]
        if event.finish is FinishReason.LENGTH:
            return [*events, *self._end("length")]
        return [*events, *self._delta(self._take())]

    def _split(self, text: str) -> list[Event]:
        """Route new text: content through the stop matcher (kept unsent), tool calls out as events."""
        if self.calls is None:
            self._unsent += self.stops.push(text)
            return []
        events: list[Event] = []
        for item in self.calls.push(text):
            if isinstance(item, str):
                self._unsent += self.stops.push(item)
            else:
                if not self.stops.matched:
                    self._unsent += self.stops.flush()  # a call starts: the content before it is final
                events += self._delta(self._take())
                if self.stops.matched:
                    break
                self._entries.clear()
                events.append(item)
            if self.stops.matched:
                break
        return events

    def _end(self, reason: Literal["stop", "length"]) -> list[Event]:
        """Flush what the parser and the stop matcher hold: the stream ends here.

        A character cut in half by the token limit is dropped rather than sent as U+FFFD (the
        detokenizer only ever holds the first bytes of a character that could still become valid);
        like tokens cut by a stop string, the tokens of those bytes are not listed in logprobs.
        """
        if self.calls is not None and not self.stops.matched:
            for item in self.calls.flush():
                if isinstance(item, str):
                    self._unsent += self.stops.push(item)
        if not self.stops.matched:
            self._unsent += self.stops.flush()
        final: FinishReasonName = "stop" if self.stops.matched or reason == "stop" else "length"
        if final == "stop" and self.calls is not None and self.calls.calls:
            final = "tool_calls"
        return [*self._delta(self._take()), Finish(self.index, final, self.stops.stop)]

    def _take(self) -> str:
        text, self._unsent = self._unsent, ""
        return text

    def _delta(self, text: str) -> list[Event]:
        self._sent_chars += len(text)
        entries = None
        if self._entries:
            ready = []
            while self._entries and self._entries[0][0] <= self._sent_chars:
                ready.append(self._entries.popleft()[1])
            entries = tuple(ready)
        if not text and not entries:
            return []
        return [TextDelta(self.index, text, entries)]

    def _entry(self, event: TokenEvent, data: bytes, offset: int) -> LogprobEntry:
        assert event.logprob is not None
        top = tuple(
            TopLogprob(_token_text(b), lp, tuple(b))
            for b, lp in ((self.tokenizer.token_bytes(t), lp) for t, lp in event.top_logprobs or ())
        )
        return LogprobEntry(_token_text(data), event.logprob, tuple(data), top, offset)


def _token_text(data: bytes) -> str:
    return data.decode("utf-8", errors="backslashreplace")


class Generation:
    """A submitted request: its sequences are queued in the engine; ``events()`` streams the result.

    Created by ``start_generation`` before any response byte is sent, so queue-full and shutdown
    errors become proper HTTP statuses. ``close()`` aborts whatever is still running.
    """

    def __init__(self, streams: list[SequenceStream], request: GenerationRequest, tokenizer: Tokenizer) -> None:
        self.streams = streams
        self.request = request
        self.tokenizer = tokenizer
        self.decoders: list[ChoiceDecoder] = []

    async def events(self) -> AsyncIterator[Event]:
        """Every choice's deltas and finish (choices interleave), moderation scores if asked, then one Usage event."""
        choices = self.request.choices
        plan = self.request.moderation
        prefix = self.request.tool_prefix
        self.decoders = [
            ChoiceDecoder(i, self.tokenizer, self.request.stop, offset=len(c.echo or ""),
                          calls=None if prefix is None else ToolCallParser(i))
            for i, c in enumerate(choices)
        ]
        gates = [ModerationGate(i, plan) if plan else None for i in range(len(choices))]
        for i, choice in enumerate(choices):
            if choice.echo:
                yield TextDelta(i, choice.echo)
            for event in self.decoders[i].opening(prefix or ""):
                yield event
        pipelines = [self._choice(d, s, g) for d, s, g in zip(self.decoders, self.streams, gates, strict=True)]
        try:
            async for event in merge(pipelines):
                yield event
        finally:
            self.close()
        if plan is not None and plan.report:
            output = tuple(g.result or ModerationResult() for g in gates if g is not None)
            yield ModerationScores(plan.checker.model, plan.input, output)
        yield self.usage()

    async def waiting(self, interval: float) -> AsyncIterator[None]:
        """Yields once every ``interval`` seconds until the first choice's prompt is read (its first output came).

        A stream that must not look idle while a long prompt is read sends a keep-alive for each.
        """
        while True:
            try:
                await asyncio.wait_for(self.streams[0].ready(), interval)
            except TimeoutError:
                yield None
            else:
                return

    def usage(self) -> Usage:
        """Token counts so far: final once every choice has finished, partial after a disconnect."""
        accepted = rejected = None
        if self.request.predicted:
            accepted = sum(s.accepted for s in self.streams)
            rejected = sum(s.drafted - s.accepted for s in self.streams)
        return Usage(
            prompt_tokens=self.request.prompt_tokens,
            completion_tokens=sum(d.completion_tokens for d in self.decoders),
            cached_tokens=self.streams[0].cached_tokens,
            accepted_prediction_tokens=accepted,
            rejected_prediction_tokens=rejected,
        )

    @staticmethod
    async def _choice(decoder: ChoiceDecoder, stream: SequenceStream,
                      gate: ModerationGate | None) -> AsyncIterator[Event]:
        """One choice's pipeline; returning early (a stop string, a flag) closes the stream, freeing its lane."""
        try:
            async for token in stream:
                for event in decoder.push(token):
                    for out in await gate.push(event) if gate else (event,):
                        yield out
                        if isinstance(out, Finish):
                            return
        finally:
            stream.close()
            if gate is not None:
                gate.close()

    def close(self) -> None:
        """Abort every sequence still generating (a client went away, or a stop string matched)."""
        for stream in self.streams:
            stream.close()


def start_generation(engine: EngineClient, request: GenerationRequest) -> Generation:
    """Queue the request's sequences now; raises the engine's QueueFullError / EngineStoppedError.

    A grammar the engine cannot compile is the request's fault: a ``RequestError``, before any byte is sent.
    """
    try:
        streams = engine.submit([(c.prompt_ids, c.params) for c in request.choices])
    except GrammarError as exc:
        raise RequestError(f"The requested output format cannot be enforced: {exc}") from None
    return Generation(streams, request, engine.tokenizer)
