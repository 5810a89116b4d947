"""Checks of the logprobs streamed chunks carry, and the trail of entries one choice has listed.

Chat chunks list ``{token, logprob, bytes, top_logprobs}`` entries; legacy chunks carry parallel
``tokens``, ``token_logprobs``, ``top_logprobs`` and ``text_offset`` lists. Either way each value
must be a finite log-probability, alternatives come most likely first and number what was asked,
a greedy request picked the most likely token, and the entries never run ahead of the text sent:
an entry travels with the chunk that sends its token's last byte.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Fail = Callable[[str, str], None]
"""Reports one broken rule: ``fail(rule, detail)``."""

_SLACK = 1e-3


@dataclass
class LogprobsTrail:
    """The logprobs entries one choice has listed so far.

    ``joined_bytes`` joins the ``bytes`` of every chat entry (None for legacy streams, or once an
    entry had no bytes); ``joined_tokens`` joins the legacy ``tokens`` (None for chat, or once a
    token was an escaped byte piece, which cannot be compared with the text).
    """

    chat: bool
    entries: int = 0
    joined_bytes: bytes | None = None
    joined_tokens: str | None = None

    @classmethod
    def new(cls, *, chat: bool) -> LogprobsTrail:
        """An empty trail for a chat or a legacy choice."""
        return cls(chat, joined_bytes=b"" if chat else None, joined_tokens=None if chat else "")

    def joined(self) -> str | None:
        """The text the entries make (invalid bytes as U+FFFD, as the server decodes), where known."""
        if self.joined_bytes is not None:
            return self.joined_bytes.decode("utf-8", "replace")
        return self.joined_tokens

    def take(self, fail: Fail, where: str, logprobs: Any, text: str, *, k: int, greedy: bool) -> int:
        """Check one content chunk's ``logprobs`` (``text``: the choice's text so far); return its entry count."""
        if not isinstance(logprobs, dict):
            fail("logprobs", f"{where}: logprobs {logprobs!r} missing on a content chunk"[:200])
            return 0
        read = self._chat if self.chat else self._legacy
        count = read(fail, where, logprobs, k, greedy)
        self.entries += count
        joined = self.joined()
        if joined is not None and not text.startswith(joined):
            fail("logprobs", f"{where}: the entries run ahead of the text sent ({len(joined)} > {len(text)} chars)")
            self.joined_bytes = self.joined_tokens = None
        return count

    def _chat(self, fail: Fail, where: str, logprobs: dict[str, Any], k: int, greedy: bool) -> int:
        entries = logprobs.get("content")
        if not isinstance(entries, list):
            fail("logprobs", f"{where}: logprobs.content is not a list")
            return 0
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
                fail("logprobs", f"{where}: a logprobs entry without a token: {entry!r}"[:200])
                continue
            data = entry.get("bytes")
            if isinstance(data, list) and all(isinstance(b, int) and 0 <= b <= 255 for b in data):
                if self.joined_bytes is not None:
                    self.joined_bytes += bytes(data)
            else:
                self.joined_bytes = None
            top = entry.get("top_logprobs")
            alternatives = [t.get("logprob") for t in top if isinstance(t, dict)] if isinstance(top, list) else None
            if alternatives is None or len(alternatives) != k:
                fail("logprobs", f"{where}: {k} top_logprobs asked, got {top!r}"[:200])
                alternatives = [a for a in alternatives or [] if is_logprob(a)]
            check_logprob(fail, where, entry.get("logprob"), alternatives, greedy=greedy)
        return len(entries)

    def _legacy(self, fail: Fail, where: str, logprobs: dict[str, Any], k: int, greedy: bool) -> int:
        lists = [logprobs.get(key) for key in ("tokens", "token_logprobs", "top_logprobs", "text_offset")]
        tokens, values, tops, offsets = lists
        if not isinstance(tokens, list) or not all(isinstance(x, list) and len(x) == len(tokens) for x in lists):
            fail("logprobs", f"{where}: tokens/token_logprobs/top_logprobs/text_offset are not parallel lists")
            self.joined_tokens = None  # the offsets can no longer be followed
            return 0
        assert isinstance(values, list) and isinstance(tops, list) and isinstance(offsets, list)
        for token, value, top, offset in zip(tokens, values, tops, offsets, strict=True):
            if not isinstance(token, str) or not isinstance(offset, int):
                fail("logprobs", f"{where}: token {token!r} / text_offset {offset!r} of the wrong type")
                continue
            joined = self.joined_tokens
            if joined is not None and "\\x" in token:  # a byte piece of a split character: not text
                self.joined_tokens = None
            elif joined is not None:
                if offset != len(joined):
                    fail("logprobs", f"{where}: text_offset {offset}, expected {len(joined)}")
                self.joined_tokens = joined + token
            alternatives = list(top.values()) if isinstance(top, dict) else None
            if alternatives is None or len(alternatives) > k or (k > 0 and not alternatives):
                fail("logprobs", f"{where}: {k} top_logprobs asked, got {top!r}"[:200])
                alternatives = []
            ranked = sorted((a for a in alternatives if is_logprob(a)), reverse=True)
            check_logprob(fail, where, value, ranked, greedy=greedy)
        return len(tokens)


def is_logprob(value: Any) -> bool:
    """Whether ``value`` is a finite number no larger than 0 (with a little float slack)."""
    return isinstance(value, int | float) and math.isfinite(value) and value <= _SLACK


def check_logprob(fail: Fail, where: str, value: Any, alternatives: list[Any], *, greedy: bool) -> None:
    """One token's logprob against its alternatives: all real, sorted, and the top one taken when greedy."""
    if not is_logprob(value):
        fail("logprobs", f"{where}: logprob {value!r} is not a finite log-probability")
        return
    if not all(is_logprob(a) for a in alternatives):
        fail("logprobs", f"{where}: top_logprobs {alternatives!r} are not finite log-probabilities"[:200])
        return
    if any(a < b for a, b in itertools.pairwise(alternatives)):
        fail("logprobs", f"{where}: top_logprobs are not sorted, most likely first")
    if greedy and alternatives and value < alternatives[0] - _SLACK:
        fail("logprobs", f"{where}: greedy sampling took a token of logprob {value:.4f} over one of "
                         f"{alternatives[0]:.4f}")
