"""Turns: the engines of one process take the CPU one step at a time, in arrival order.

Every model's engine decodes on the same cores with all of their threads; two stepping at once would
oversubscribe them and make both crawl. Each engine thread holds the turn for one step, and a waiting
engine is handed it the moment the step ends, so busy models alternate step by step.
"""

from __future__ import annotations

import threading
from collections import deque
from types import TracebackType


class Turns:
    """A fair lock: the turn goes to the waiting engines in the order they asked, never twice in a row to one
    while another waits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: deque[threading.Event] = deque()
        self._held = False

    def __enter__(self) -> None:
        with self._lock:
            if not self._held:
                self._held = True
                return
            handed = threading.Event()
            self._waiting.append(handed)
        handed.wait()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()  # the turn passes on held
            else:
                self._held = False


CPU = Turns()
"""The process's one CPU: every engine steps under it unless given turns of its own."""
