"""Generation: engine token events -> neutral TextDelta / Finish / Usage events, shared by chat and completions.

Each choice runs one pipeline: detokenizer -> stop matcher (``ChoiceDecoder``) -> moderation hold-back
(``ModerationGate``, when the request is moderated).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

from streamserve.engine import Engine, FinishReason, SamplingParams, SequenceStream, TokenEvent
from streamserve.moderation import ModerationResult
from streamserve.streaming.detokenizer import IncrementalDetokenizer
from streamserve.streaming.events import Event, Finish, LogprobEntry, ModerationScores, TextDelta, TopLogprob, Usage
from streamserve.streaming.merge import merge
from streamserve.streaming.moderation import ModerationGate, ModerationPlan
from streamserve.streaming.stops import StopMatcher
from streamserve.streaming.tokenizer import Tokenizer


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
    """

    choices: list[ChoiceRequest]
    stop: tuple[str, ...]
    prompt_tokens: int
    moderation: ModerationPlan | None = None


class ChoiceDecoder:
    """Turns one choice's token events into text: complete UTF-8 only, stop strings held back and cut.

    A token's logprobs entry is released with the delta that carries the token's last byte;
    tokens cut with a stop string are never listed.
    """

    def __init__(self, index: int, tokenizer: Tokenizer, stop: tuple[str, ...], *, offset: int = 0) -> None:
        self.index = index
        self.tokenizer = tokenizer
        self.detokenizer = IncrementalDetokenizer()
        self.stops = StopMatcher(stop)
        self.completion_tokens = 0
        self._decoded_chars = offset
        self._sent_chars = offset
        self._entries: deque[tuple[int, LogprobEntry]] = deque()

    def push(self, event: TokenEvent) -> list[Event]:
        """The events this token produces: at most one TextDelta, then a Finish if the choice ended."""
        if event.finish is FinishReason.EOG:
            return self._end("stop")
        self.completion_tokens += 1
        data = self.tokenizer.token_bytes(event.token_id)
        text = self.detokenizer.push(data)
        start = self._decoded_chars
        self._decoded_chars += len(text)
        if event.logprob is not None:
            end = self._decoded_chars + (1 if self.detokenizer.pending else 0)
            self._entries.append((end, self._entry(event, data, start)))
        sent = self.stops.push(text)
        if self.stops.matched:
            return [*self._delta(sent), Finish(self.index, "stop")]
        if event.finish is FinishReason.LENGTH:
            return self._end("length", sent)
        return self._delta(sent)

    def _end(self, reason: Literal["stop", "length"], text: str = "") -> list[Event]:
        """Flush the text the stop matcher holds: the stream ends here.

        A character cut in half by the token limit is dropped rather than sent as U+FFFD (the
        detokenizer only ever holds the first bytes of a character that could still become valid);
        like tokens cut by a stop string, the tokens of those bytes are not listed in logprobs.
        """
        if not self.stops.matched:
            text += self.stops.flush()
        final_reason: Literal["stop", "length"] = "stop" if self.stops.matched or reason == "stop" else "length"
        return [*self._delta(text), Finish(self.index, final_reason)]

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
        self.decoders = [
            ChoiceDecoder(i, self.tokenizer, self.request.stop, offset=len(c.echo or ""))
            for i, c in enumerate(choices)
        ]
        gates = [ModerationGate(i, plan) if plan else None for i in range(len(choices))]
        for i, choice in enumerate(choices):
            if choice.echo:
                yield TextDelta(i, choice.echo)
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

    def usage(self) -> Usage:
        """Token counts so far: final once every choice has finished, partial after a disconnect."""
        return Usage(
            prompt_tokens=self.request.prompt_tokens,
            completion_tokens=sum(d.completion_tokens for d in self.decoders),
            cached_tokens=self.streams[0].cached_tokens,
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


def start_generation(engine: Engine, request: GenerationRequest) -> Generation:
    """Queue the request's sequences now; raises the engine's QueueFullError / EngineStoppedError."""
    streams = engine.submit([(c.prompt_ids, c.params) for c in request.choices])
    return Generation(streams, request, engine.tokenizer)
