"""Checker: one worker thread that runs every stream's moderation checks, batched per policy.

Checks submitted during one turn of the event loop (all streams woken by one engine step) are
handed to the thread together, so a classifier scores 16 streams' windows in one call. Results
come back to the loop in one ``call_soon_threadsafe`` per batch. Nothing runs on the event loop
but the bookkeeping, and streams without moderation never touch the checker.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from streamserve.moderation.categories import ModerationResult
from streamserve.moderation.policy import Policy, Scan, Window

logger = logging.getLogger("streamserve.moderation")


class ModerationObserver(Protocol):
    """Receives moderation measurements (the API layer turns them into Prometheus metrics)."""

    def on_check(self, policy: str, texts: int, seconds: float) -> None:
        """One batched call of ``policy`` on ``texts`` texts took ``seconds``."""

    def on_flag(self, categories: frozenset[str]) -> None:
        """A stream or a text was flagged in these categories."""

    def on_holdback(self, chars: int, seconds: float) -> None:
        """A delta was released ``seconds`` after it was generated, with ``chars`` characters still held."""


@dataclass(slots=True)
class _Job:
    """One check: a scan of a window by one policy, or a score of texts by every policy."""

    future: asyncio.Future[Any]
    policy: Policy | None
    window: Window | None = None
    texts: Sequence[str] = ()


class Checker:
    """Runs checks for all streams on one worker thread; ``scan`` and ``score`` are awaited on the loop."""

    def __init__(self, policies: Sequence[Policy], observer: ModerationObserver | None = None) -> None:
        if not policies:
            raise ValueError("a checker needs at least one policy")
        self.policies = tuple(policies)
        self.observer = observer
        self.model = "+".join(p.model for p in self.policies)
        self._pending: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        self._queue: queue.SimpleQueue[list[_Job] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="streamserve-moderation", daemon=True)
        self._thread.start()

    async def scan(self, policy: Policy, window: Window) -> Scan:
        """``policy``'s verdict on one window of a stream."""
        result: Scan = await self._submit(_Job(asyncio.get_running_loop().create_future(), policy, window))
        return result

    async def score(self, texts: Sequence[str]) -> list[ModerationResult]:
        """Every policy's verdict on each whole text, combined (flags united, highest score kept)."""
        if not texts:
            return []
        results: list[ModerationResult] = await self._submit(
            _Job(asyncio.get_running_loop().create_future(), None, texts=list(texts)))
        return results

    def close(self) -> None:
        """Stop the worker thread after the checks already queued."""
        self._queue.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(10)

    def _submit(self, job: _Job) -> asyncio.Future[Any]:
        loop = job.future.get_loop()
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = []
            loop.call_soon(self._flush, loop)
        pending.append(job)
        return job.future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._queue.put(self._pending.pop(loop, []))

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            while True:  # take whatever else is already queued: one bigger batch
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch.extend(more)
            self._process(batch)

    def _process(self, batch: list[_Job]) -> None:
        outcomes: list[_Outcome] = []
        scans: dict[int, list[_Job]] = {}
        for job in batch:
            if job.policy is not None:
                scans.setdefault(id(job.policy), []).append(job)
        for jobs in scans.values():
            outcomes.extend(self._scan_batch(jobs))
        score_jobs = [job for job in batch if job.policy is None]
        if score_jobs:
            outcomes.extend(self._score_batch(score_jobs))
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome[0].future.get_loop(), []).append(outcome)
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, items)
            except RuntimeError:
                logger.debug("event loop closed; dropped %d moderation results", len(items))

    def _scan_batch(self, jobs: list[_Job]) -> list[_Outcome]:
        """One policy's scans of many streams' windows, in one call."""
        policy = jobs[0].policy
        assert policy is not None
        windows = [job.window for job in jobs if job.window is not None]
        start = time.perf_counter()
        try:
            scans = policy.scan(windows)
        except Exception as exc:
            logger.exception("moderation scan by %s failed", policy.model)
            return [(job, None, exc) for job in jobs]
        self._observe(policy, len(windows), start)
        return [(job, scan, None) for job, scan in zip(jobs, scans, strict=True)]

    def _score_batch(self, jobs: list[_Job]) -> list[_Outcome]:
        """Every policy's scores of all jobs' texts, in one call per policy, combined per text."""
        texts = [text for job in jobs for text in job.texts]
        per_policy = []
        try:
            for policy in self.policies:
                start = time.perf_counter()
                per_policy.append(policy.score(texts))
                self._observe(policy, len(texts), start)
        except Exception as exc:
            logger.exception("moderation scoring failed")
            return [(job, None, exc) for job in jobs]
        combined = [ModerationResult.combine(results) for results in zip(*per_policy, strict=True)]
        outcomes: list[_Outcome] = []
        offset = 0
        for job in jobs:
            outcomes.append((job, combined[offset:offset + len(job.texts)], None))
            offset += len(job.texts)
        return outcomes

    def _observe(self, policy: Policy, texts: int, start: float) -> None:
        if self.observer is not None:
            self.observer.on_check(policy.model, texts, time.perf_counter() - start)


_Outcome = tuple[_Job, Any, BaseException | None]


def _resolve(items: list[_Outcome]) -> None:
    for job, result, error in items:
        if job.future.done():  # its stream went away meanwhile
            continue
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)
