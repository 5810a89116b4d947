"""StopMatcher: cut the output at the first stop string, never sending any part of one.

Text that might be the start of a stop string is held back until it is proven not to be; on a
hit, everything from the stop string on is dropped. The result does not depend on how the text
was split into tokens: it is always the whole text cut at the earliest occurrence of any stop.
"""

from __future__ import annotations

from collections.abc import Sequence


class StopMatcher:
    """Streams text through, holding back possible stop-string starts and trimming on a match.

    When a stop string completes while an earlier-starting, longer stop string could still
    complete (stops ``["abcd", "c"]`` after ``"abc"``), the match is not declared yet: the text
    stays held until the earlier candidate resolves, so the earliest occurrence always wins.
    ``flush()`` settles such a pending match, so check ``matched`` after it too.
    """

    __slots__ = ("_first_chars", "_longest", "_matched", "_pending", "_stop", "_stops")

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(dict.fromkeys(stop for stop in stops if stop))
        self._first_chars = frozenset(stop[0] for stop in self._stops)
        self._longest = max(map(len, self._stops), default=0)
        self._pending = ""
        self._matched = False
        self._stop: str | None = None

    @property
    def matched(self) -> bool:
        """Whether a stop string was found; the stream must then end with finish reason ``stop``."""
        return self._matched

    @property
    def stop(self) -> str | None:
        """The stop string that matched, or None: the earliest in the text; of several starting there, the
        shortest (it completes first, so the answer does not depend on how the text was split)."""
        return self._stop

    @property
    def held(self) -> int:
        """How many characters of the pushed text are held back, neither sent nor dropped yet."""
        return len(self._pending)

    def push(self, text: str) -> str:
        """Add new text; return the part that is now safe to send (empty after a match)."""
        if self._matched:
            return ""
        if not self._stops:
            return text
        return self._settle(self._pending + text, final=False)

    def flush(self) -> str:
        """End of the stream without a match: return the held-back text, cut at a stop if one is pending."""
        if self._matched or not self._pending:
            return ""
        return self._settle(self._pending, final=True)

    def _settle(self, text: str, *, final: bool) -> str:
        """Send what is certain in the unsent ``text`` and keep the rest pending."""
        match, stop = self._earliest_match(text)
        limit = len(text) if match is None else match
        safe = limit if final else self._earliest_partial(text, limit)
        if match is not None and match <= safe:
            self._matched = True
            self._stop = stop
            self._pending = ""
            return text[:match]
        self._pending = text[safe:]
        return text[:safe]

    def _earliest_match(self, text: str) -> tuple[int | None, str | None]:
        """The start of the earliest complete stop string in ``text`` and that string, if any."""
        earliest: int | None = None
        found: str | None = None
        for stop in self._stops:
            start = text.find(stop)
            if start != -1 and (earliest is None or start < earliest
                                or (start == earliest and found is not None and len(stop) < len(found))):
                earliest, found = start, stop
        return earliest, found

    def _earliest_partial(self, text: str, limit: int) -> int:
        """The first start before ``limit`` of a suffix of ``text`` that begins a stop, else ``limit``.

        No complete stop starts before ``limit``, so every such suffix is a proper prefix of a stop.
        """
        for start in range(max(0, len(text) - self._longest + 1), limit):
            if text[start] in self._first_chars:
                tail = text[start:]
                if any(stop.startswith(tail) for stop in self._stops):
                    return start
        return limit
