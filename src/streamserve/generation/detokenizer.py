"""IncrementalDetokenizer: token bytes in, complete UTF-8 text out.

A token's piece may end in the middle of a character (emoji, CJK). The detokenizer holds back
a trailing sequence only while it can still become a valid character (llama.cpp's
``validate_utf8`` rule) and replaces bytes that never can with U+FFFD at once, exactly as
``bytes.decode("utf-8", "replace")`` does on the whole output.
"""

from __future__ import annotations

_SECOND_BYTE: dict[int, tuple[int, int]] = {
    0xE0: (0xA0, 0xBF),
    0xED: (0x80, 0x9F),
    0xF0: (0x90, 0xBF),
    0xF4: (0x80, 0x8F),
}
"""Lead bytes whose second byte is narrower than 80..BF: no overlongs, surrogates or points past U+10FFFF."""


def _sequence_length(lead: int) -> int:
    """The length of the UTF-8 sequence ``lead`` starts, or 0 if it starts none (ASCII or invalid)."""
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0


def _incomplete_tail(data: bytes) -> int:
    """How many trailing bytes of ``data`` (0 to 3) are a valid but unfinished UTF-8 sequence.

    Only the last three bytes are looked at, so the cost does not grow with ``data``.
    """
    end = len(data)
    for back in range(1, min(3, end) + 1):
        byte = data[end - back]
        if 0x80 <= byte <= 0xBF:
            continue
        if _sequence_length(byte) <= back:
            return 0
        if back >= 2:
            low, high = _SECOND_BYTE.get(byte, (0x80, 0xBF))
            if not low <= data[end - back + 1] <= high:
                return 0
        return back
    return 0


class IncrementalDetokenizer:
    """Turns a stream of raw token bytes into text, emitting every character as soon as it is complete.

    For any byte string cut into any pieces, the joined ``push()`` results plus ``flush()`` equal
    ``full.decode("utf-8", "replace")``.
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    @property
    def pending(self) -> bytes:
        """The bytes held back: the start of a character that is not complete yet (at most 3 bytes)."""
        return self._pending

    def push(self, data: bytes) -> str:
        """Add one token's bytes; return the text that is now complete (possibly empty)."""
        buffer = self._pending + data if self._pending else data
        hold = _incomplete_tail(buffer)
        if hold:
            self._pending = buffer[-hold:]
            buffer = buffer[:-hold]
        else:
            self._pending = b""
        return buffer.decode("utf-8", "replace")

    def flush(self) -> str:
        """End of the stream: return the held bytes, an unfinished character becoming U+FFFD."""
        text = self._pending.decode("utf-8", "replace")
        self._pending = b""
        return text
