"""The checker: checks from many streams in one loop turn become one call per policy, on its own thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from streamserve.moderation import Checker, ModerationError, ModerationResult, Policy, Scan, Window


class Recording(Policy):
    model = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str]] = []

    def score(self, texts: Sequence[str]) -> list[ModerationResult]:
        self.calls.append(("score", len(texts), threading.current_thread().name))
        return [ModerationResult(frozenset({"hate"}) if "x" in t else frozenset(), {"hate": 0.7}) for t in texts]

    def scan(self, windows: Sequence[Window]) -> list[Scan]:
        self.calls.append(("scan", len(windows), threading.current_thread().name))
        if any(w.text == "boom" for w in windows):
            raise ModerationError("boom")
        return [Scan(ModerationResult(), len(w.text) - w.start) for w in windows]


def test_scans_of_one_turn_are_one_batch_off_the_loop() -> None:
    policy = Recording()
    checker = Checker([policy])

    async def main() -> list[Scan]:
        return list(await asyncio.gather(*(checker.scan(policy, Window(f"text {i}", 0, False)) for i in range(16))))

    try:
        scans = asyncio.run(main())
    finally:
        checker.close()
    assert [s.cleared for s in scans] == [len(f"text {i}") for i in range(16)]
    assert policy.calls == [("scan", 16, "streamserve-moderation")]


def test_scores_combine_policies_and_errors_reach_the_caller() -> None:
    first, second = Recording(), Recording()
    checker = Checker([first, second])

    async def main() -> tuple[list[ModerationResult], BaseException | None]:
        results = await checker.score(["a", "x"])
        try:
            await checker.scan(first, Window("boom", 0, False))
        except ModerationError as exc:
            return results, exc
        return results, None

    try:
        results, error = asyncio.run(main())
    finally:
        checker.close()
    assert [r.flagged for r in results] == [False, True]
    assert results[1].score("hate") == 0.7
    assert isinstance(error, ModerationError)


def test_needs_a_policy() -> None:
    with pytest.raises(ValueError):
        Checker([])
