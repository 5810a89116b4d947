"""The hold-back stage: one choice's text, after the stop matcher, released only once moderation clears it.

Blocking mode holds each delta until every policy has cleared its last character, and never
lets the held text grow past the window: rules clear everything but a possible match in progress
(like a stop string), classifiers clear a window at a time. Deltas are released whole and
unchanged, so an unflagged stream is the same events as an unmoderated one, only later. A flag
ends the choice with ``content_filter``; what is held then (the flagged text, and everything of
the match) is dropped. Async mode releases text at once, checks behind it, reports each check as
an ``Annotation``, and waits for the checks whenever they fall a window behind.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Literal

from streamserve.generation.events import Annotation, Event, Finish, TextDelta
from streamserve.moderation import Checker, ModerationResult, Policy, Scan, Window

OutputMode = Literal["off", "blocking", "async"]


@dataclass(frozen=True, slots=True)
class ModerationPlan:
    """How one request is moderated: the checker, the output mode and window, and whether to report scores.

    ``input`` holds the prompt's results when they are reported (the prompt was checked before
    generation); ``report`` adds the ``moderation`` chunk (stream) or field (response).
    """

    checker: Checker
    output: OutputMode
    window: int
    report: bool = False
    input: tuple[ModerationResult, ...] = ()


@dataclass(slots=True)
class _Held:
    end: int
    arrived: float
    delta: TextDelta


class ModerationGate:
    """Moderates one choice's deltas; ``push`` returns the events to send now (a ``content_filter`` Finish ends it)."""

    def __init__(self, index: int, plan: ModerationPlan) -> None:
        self.index = index
        self.result: ModerationResult | None = None
        self._plan = plan
        self._checker = plan.checker
        self._observer = plan.checker.observer
        self._policies: tuple[Policy, ...] = plan.checker.policies if plan.output != "off" else ()
        self._cleared = [0] * len(self._policies)
        self._generated = 0
        self._released = 0
        self._held: deque[_Held] = deque()
        self._tail = ""
        self._tail_start = 0
        self._keep = max((p.context for p in self._policies), default=0) + 2 * plan.window
        self._parts: list[str] = []
        self._flag: ModerationResult | None = None
        self._running: dict[asyncio.Task[Scan], tuple[int, Window, int]] = {}
        self._annotations: list[Event] = []

    @property
    def held(self) -> int:
        """Characters generated but not released yet."""
        return self._generated - self._released

    async def push(self, event: Event) -> list[Event]:
        """The events ``event`` lets out now, in order (events other than text and finish pass through)."""
        if isinstance(event, Finish):
            return await self._finish(event)
        if not isinstance(event, TextDelta):
            return [event]
        self._append(event)
        mode = self._plan.output
        if mode == "off":
            self._released = self._generated
            return [event]
        if mode == "blocking":
            await self._check(final=False)
            return self._blocked() if self._flag else self._release()
        self._released = self._generated
        self._launch()
        self._harvest()
        while not self._flag and self._running and self._released - min(self._cleared) > self._plan.window:
            await asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED)
            self._harvest()
        return [event, *self._take_annotations(), *self._blocked()] if self._flag else [
            event, *self._take_annotations()]

    def close(self) -> None:
        """Cancel checks still running (the stream ended or its client went away)."""
        for task in self._running:
            task.cancel()
        self._running.clear()

    async def _finish(self, event: Finish) -> list[Event]:
        if self._running:
            await asyncio.wait(self._running)
            self._harvest()
        if not self._flag:
            await self._check(final=True)
        if self._flag:
            return [*self._take_annotations(), *self._blocked()]
        out: list[Event] = [*self._take_annotations(), *self._release(everything=True)]
        if self._plan.report:
            self.result = (await self._checker.score(["".join(self._parts)]))[0]
        return [*out, event]

    def _append(self, delta: TextDelta) -> None:
        text = delta.text
        self._generated += len(text)
        self._parts.append(text)
        if self._policies:
            self._tail += text
            if len(self._tail) > 2 * self._keep:
                cut = len(self._tail) - self._keep
                self._tail = self._tail[cut:]
                self._tail_start += cut
        if self._plan.output == "blocking":
            self._held.append(_Held(self._generated, time.monotonic(), delta))

    def _due(self, final: bool) -> list[tuple[int, Window, int]]:
        """The scans to run now: (policy index, window, absolute offset of the window's text)."""
        due = []
        for i, policy in enumerate(self._policies):
            pending = self._generated - self._cleared[i]
            if pending <= 0 or any(entry[0] == i for entry in self._running.values()):
                continue
            if not final and policy.stride is not None and pending < policy.stride:
                continue
            begin = max(self._tail_start, self._cleared[i] - policy.context)
            text = self._tail[begin - self._tail_start:]
            due.append((i, Window(text, self._cleared[i] - begin, final), begin))
        return due

    async def _check(self, *, final: bool) -> None:
        due = self._due(final)
        if not due:
            return
        scans = await asyncio.gather(*(self._checker.scan(self._policies[i], w) for i, w, _ in due))
        for (i, window, begin), scan in zip(due, scans, strict=True):
            self._apply(i, window, begin, scan)

    def _launch(self) -> None:
        for i, window, begin in self._due(final=False):
            task = asyncio.ensure_future(self._checker.scan(self._policies[i], window))
            self._running[task] = (i, window, begin)

    def _harvest(self) -> None:
        for task in [t for t in self._running if t.done()]:
            i, window, begin = self._running.pop(task)
            self._apply(i, window, begin, task.result())

    def _apply(self, i: int, window: Window, begin: int, scan: Scan) -> None:
        start = begin + window.start
        if scan.result.flagged:
            self._flag = scan.result if self._flag is None else ModerationResult.combine([self._flag, scan.result])
            if self._observer is not None:
                self._observer.on_flag(scan.result.flagged_categories)
        else:
            self._cleared[i] = max(self._cleared[i], start + scan.cleared)
        if self._plan.output == "async":
            checked = min(self._cleared)
            self._annotations.append(Annotation(self.index, scan.result, start, begin + len(window.text), checked))

    def _take_annotations(self) -> list[Event]:
        out, self._annotations = self._annotations, []
        return out

    def _blocked(self) -> list[Event]:
        self.result = self._flag
        self._held.clear()
        self.close()
        return [Finish(self.index, "content_filter")]

    def _release(self, *, everything: bool = False) -> list[Event]:
        """Held deltas every policy cleared; then the oldest ones if the hold-back exceeds the window.

        Forcing only ever passes a possible rules match longer than the window: classifiers clear
        at least every half window, so their text is always cleared first.
        """
        limit = self._generated if everything else min(self._cleared, default=self._generated)
        windowed = [c for c, p in zip(self._cleared, self._policies, strict=True) if p.stride is not None]
        force_limit = min(windowed, default=self._generated)
        out: list[Event] = []
        now = time.monotonic()
        while self._held and (self._held[0].end <= limit or (
                self._generated - self._released > self._plan.window and self._held[0].end <= force_limit)):
            held = self._held.popleft()
            self._released = held.end
            out.append(held.delta)
            if self._observer is not None:
                self._observer.on_holdback(self._generated - held.end, now - held.arrived)
        for i, policy in enumerate(self._policies):
            if policy.stride is None:
                self._cleared[i] = max(self._cleared[i], self._released)
        return out


