"""Draft sources for speculative decoding: a request's predicted output, or n-grams of the text so far.

A drafter proposes the tokens it expects to follow a sequence's output; the engine verifies them in one
decode and keeps the prefix the model agrees with (``runner.ModelRunner``). Drafts are deterministic
functions of the tokens so far, which is what makes accepting "while the sampled token equals the
draft" exact for sampled output too (docs/speculation.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

REALIGN_NGRAM = 4
"""After a mismatch, a prediction is found again by the last 1 to this many emitted tokens (longest first)."""

LOOKUP_NGRAM = (3, 2)
"""N-gram lengths a draftless lookup tries, longest first."""


def _occurrences(haystack: npt.NDArray[np.int64], needle: Sequence[int]) -> npt.NDArray[np.intp]:
    """Start indices where ``needle`` occurs in ``haystack``, ascending."""
    n = len(needle)
    if n == 0 or n > haystack.size:
        return np.empty(0, dtype=np.intp)
    windows = np.lib.stride_tricks.sliding_window_view(haystack, n)
    return np.flatnonzero((windows == np.asarray(needle, dtype=np.int64)).all(axis=1))


class PredictionDrafter:
    """Drafts from a predicted output (OpenAI's Predicted Outputs): the prediction's tokens after the output's.

    While the output follows the prediction, the draft is the prediction's next tokens. After a mismatch
    (the answer inserts, deletes or changes a span), the output's last emitted tokens are looked up in the
    prediction again, preferring the first place at or after where it last agreed, so drafting resumes
    after an edited span.
    """

    def __init__(self, prediction: Sequence[int]) -> None:
        self.prediction = list(prediction)
        self._array = np.asarray(self.prediction, dtype=np.int64)
        self._cursor: int | None = 0  # index in the prediction of the next expected token; None: lost
        self._anchor = 0  # where it last agreed: realignment looks here first
        self._seen = 0  # output tokens already followed

    def propose(self, output: Sequence[int], k: int) -> list[int]:
        """Up to ``k`` tokens the prediction expects after ``output``."""
        for token in output[self._seen:]:
            cursor = self._cursor
            if cursor is not None and cursor < len(self.prediction) and self.prediction[cursor] == token:
                self._cursor = self._anchor = cursor + 1
            else:
                self._cursor = None
        self._seen = len(output)
        if self._cursor is None:
            self._cursor = self._realign(output)
        if self._cursor is None or k <= 0:
            return []
        return self.prediction[self._cursor : self._cursor + k]

    def _realign(self, output: Sequence[int]) -> int | None:
        """The prediction index following the output's last tokens, found again; None if nowhere."""
        for n in range(min(REALIGN_NGRAM, len(output)), 0, -1):
            starts = _occurrences(self._array, output[-n:])
            if starts.size == 0:
                continue
            ends = starts + n
            ahead = ends[ends >= self._anchor]
            end = int(ahead[0]) if ahead.size else int(ends[-1])
            if end < len(self.prediction):
                return end
        return None


class NgramDrafter:
    """Draftless drafts (prompt lookup): the tokens that followed the last earlier occurrence of the
    output's final n-gram in the prompt and output so far.

    The history is kept in one array that the output is appended to, so a lookup each step costs a scan
    of it, not a copy of the prompt (steps propose even when nothing is drafted: ``Speculator.draft``).
    """

    def __init__(self, prompt: Sequence[int]) -> None:
        self._history = np.empty(max(64, 2 * len(prompt)), dtype=np.int64)
        self._history[: len(prompt)] = prompt
        self._prompt_len = self._len = len(prompt)

    def propose(self, output: Sequence[int], k: int) -> list[int]:
        """Up to ``k`` tokens that followed the latest earlier occurrence of the last 3 (else 2) tokens."""
        self._extend(output)
        if k <= 0:
            return []
        history = self._history[: self._len]
        for n in LOOKUP_NGRAM:
            if self._len <= n:
                continue
            starts = _occurrences(history[:-1], history[-n:].tolist())  # earlier ones, not the suffix itself
            if starts.size:
                end = int(starts[-1]) + n
                return [int(t) for t in history[end : end + k]]
        return []

    def _extend(self, output: Sequence[int]) -> None:
        """Append the output tokens not in the history yet."""
        new = output[self._len - self._prompt_len :]
        if not new:
            return
        if self._len + len(new) > self._history.size:
            grown = np.empty(2 * (self._len + len(new)), dtype=np.int64)
            grown[: self._len] = self._history[: self._len]
            self._history = grown
        self._history[self._len : self._len + len(new)] = new
        self._len += len(new)
