"""ToolCallParser: one choice's text split into content and tool calls, as it streams.

The text is in the format ``structured`` constrains: optional content, then calls
``<tool_call>\\n{"name": "f", "arguments": {...}}\\n</tool_call>`` one per line. The grammar makes the
structure certain, so the parser needs no JSON repair: it finds the name in the call's head, then streams
the arguments value byte for byte as the model wrote it, tracking only string and bracket depth to see
where it ends. Content that might be the start of ``<tool_call>`` is held back, like a stop string, and
so is trailing whitespace: whitespace before a call is formatting, not content.
"""

from __future__ import annotations

import json
import re
import secrets
import string

from streamserve.generation.events import ToolCallDelta, ToolCallEnd, ToolCallEvent, ToolCallStart
from streamserve.prompting.grammars import CALL_CLOSE, CALL_OPEN

_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"arguments"\s*:')
_ID_ALPHABET = string.ascii_letters + string.digits


def new_call_id() -> str:
    """A call id in OpenAI's form: ``call_`` and 24 letters or digits."""
    return "call_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def _held_prefix(text: str, marker: str) -> int:
    """Length of the longest end of ``text`` that is a proper start of ``marker``."""
    for size in range(min(len(text), len(marker) - 1), 0, -1):
        if marker.startswith(text[-size:]):
            return size
    return 0


class ToolCallParser:
    """Turns pushed text into content strings and ``ToolCallStart`` / ``ToolCallDelta`` / ``ToolCallEnd`` events.

    States: ``text`` (content, before any call), ``head`` (after ``<tool_call>``, until the arguments
    begin), ``arguments``, ``tail`` (until ``</tool_call>``), ``between`` (until the next call).
    """

    def __init__(self, index: int) -> None:
        self.index = index
        self.calls = 0  # calls started so far
        self._state = "text"
        self._buffer = ""
        self._call_id = ""
        self._name = ""
        self._arguments: list[str] = []
        self._depth = 0
        self._in_string = False
        self._escaped = False

    @property
    def started(self) -> bool:
        """Whether a call has begun (its marker was seen): from here on no text is content."""
        return self._state != "text"

    def push(self, text: str) -> list[str | ToolCallEvent]:
        """The content and call events that ``text`` completes, in order."""
        self._buffer += text
        out: list[str | ToolCallEvent] = []
        while self._step(out):
            pass
        return out

    def flush(self) -> list[str | ToolCallEvent]:
        """The end of the text: content held back is content after all; an unfinished call stays unfinished."""
        rest, self._buffer = self._buffer, ""
        return [rest] if self._state == "text" and rest else []

    def _step(self, out: list[str | ToolCallEvent]) -> bool:
        """Consume what the buffer allows in the current state; True if the state changed (go on)."""
        buffer = self._buffer
        if self._state in ("text", "between"):
            at = buffer.find(CALL_OPEN)
            if at < 0:
                if self._state == "text":
                    keep = len(buffer) - _held_prefix(buffer, CALL_OPEN)
                    safe = len(buffer[:keep].rstrip())
                    if safe:
                        out.append(buffer[:safe])
                    self._buffer = buffer[safe:]
                else:
                    self._buffer = buffer[len(buffer) - _held_prefix(buffer, CALL_OPEN):]
                return False
            if self._state == "text" and buffer[:at].strip():
                out.append(buffer[:at].rstrip())
            self._buffer = buffer[at + len(CALL_OPEN):]
            self._state = "head"
            return True
        if self._state == "head":
            match = _HEAD.match(buffer)
            if match is None:
                return False
            self._call_id, self._name = new_call_id(), json.loads(match.group(1))
            self._arguments, self._depth = [], 0
            out.append(ToolCallStart(self.index, self.calls, self._call_id, self._name))
            self.calls += 1
            self._buffer = buffer[match.end():]
            self._state = "arguments"
            return True
        if self._state == "arguments":
            return self._scan_arguments(out)
        at = buffer.find(CALL_CLOSE)
        if at < 0:
            self._buffer = buffer[len(buffer) - _held_prefix(buffer, CALL_CLOSE):]
            return False
        self._buffer = buffer[at + len(CALL_CLOSE):]
        self._state = "between"
        return True

    def _scan_arguments(self, out: list[str | ToolCallEvent]) -> bool:
        buffer = self._buffer
        start = 0
        if self._depth == 0 and not self._arguments:
            start = len(buffer) - len(buffer.lstrip())  # whitespace before the value is not part of it
        end = None
        for i in range(start, len(buffer)):
            char = buffer[i]
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
            elif char == '"':
                self._in_string = True
            elif char in "{[":
                self._depth += 1
            elif char in "}]":
                self._depth -= 1
                if self._depth == 0:
                    end = i + 1
                    break
        piece = buffer[start:end]
        if piece:
            self._arguments.append(piece)
            out.append(ToolCallDelta(self.index, self.calls - 1, piece))
        if end is None:
            self._buffer = ""
            return False
        out.append(ToolCallEnd(self.index, self.calls - 1, self._call_id, self._name, "".join(self._arguments)))
        self._buffer = buffer[end:]
        self._state = "tail"
        return True
