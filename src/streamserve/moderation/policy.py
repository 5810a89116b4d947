"""The one small interface every moderation policy implements: score texts, scan a stream's new text."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from streamserve.moderation.categories import ModerationResult


class ModerationError(Exception):
    """A check could not be completed (a classifier failed, a guard model's verdict did not parse)."""


@dataclass(frozen=True, slots=True)
class Window:
    """A stretch of one stream's text to scan.

    ``text[:start]`` is context the policy already cleared (it may be needed for word boundaries or
    overlap); ``text[start:]`` is new. ``final`` says the stream has ended, so nothing can follow.
    """

    text: str
    start: int
    final: bool


@dataclass(frozen=True, slots=True)
class Scan:
    """A scan's verdict: the result, and how many new characters (from ``start``) are cleared for release.

    Characters past ``cleared`` are held: for rules, they could still be the start of a match.
    Spans in ``result`` are positions in the window's text.
    """

    result: ModerationResult
    cleared: int


class Policy(ABC):
    """A moderation policy: scores a batch of texts, and scans windows of streams' text.

    ``stride`` says when a stream must be scanned: ``None`` after every new piece of text (rules:
    cheap, and exact about what to hold back), or once that many new characters are waiting (a
    classifier judging a whole window). ``context`` is how many cleared characters before the new
    text each scan needs. Checks run on the shared checker's worker thread, never on the event loop.
    """

    model: str = "streamserve-moderation"
    stride: int | None = None
    context: int = 0

    @abstractmethod
    def score(self, texts: Sequence[str]) -> list[ModerationResult]:
        """One result per whole text (``/v1/moderations``, prompts, a finished output)."""

    @abstractmethod
    def scan(self, windows: Sequence[Window]) -> list[Scan]:
        """One verdict per window of streamed text."""


class WindowedPolicy(Policy):
    """A classifier over whole windows: scan new text once ``stride`` characters wait, with overlap.

    Each scan sees the new text plus up to ``context`` characters before it, and ``stride`` is at
    most ``context``, so every span of up to ``context`` characters lies whole inside one checked
    window: nothing straddles a boundary unchecked. A trailing word that may still grow is held for
    the next scan unless the stream ended (or the "word" is a stride long).
    """

    def configure(self, window: int) -> None:
        """Size the scans for a hold-back window of ``window`` characters: stride and context of half each."""
        self.stride = max(1, window // 2)
        self.context = max(1, window - self.stride)

    def scan(self, windows: Sequence[Window]) -> list[Scan]:
        """Score each window's whole text; clear its new text except a trailing partial word."""
        results = self.score([w.text for w in windows])
        scans = []
        for window, result in zip(windows, results, strict=True):
            new = window.text[window.start:]
            cleared = 0 if result.flagged else len(new) if window.final else _before_partial_word(new, self.stride)
            scans.append(Scan(result, cleared))
        return scans


def _before_partial_word(text: str, stride: int | None) -> int:
    """Length of ``text`` up to its last whitespace; all of it if the trailing run is ``stride`` long."""
    for i in range(len(text) - 1, -1, -1):
        if text[i].isspace():
            return i + 1
    return len(text) if stride is None or len(text) >= stride else 0
