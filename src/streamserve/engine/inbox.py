"""Inbox: what the client asks of the engine thread (sequences to add and to abort, stop), applied between steps."""

from __future__ import annotations

import threading

from streamserve.engine.sequence import Sequence


class Inbox:
    """A thread-safe mailbox; the engine thread waits on it when it has nothing to do (no polling)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._added: list[Sequence] = []
        self._aborted: list[int] = []
        self._stopping = False

    def add(self, seqs: list[Sequence]) -> None:
        """Hand new sequences to the engine thread; it owns them from now on."""
        with self._cond:
            self._added.extend(seqs)
            self._cond.notify()

    def abort(self, number: int) -> None:
        """Ask the engine thread to stop the sequence numbered ``number`` at its next step boundary."""
        with self._cond:
            self._aborted.append(number)
            self._cond.notify()

    def stop(self) -> None:
        """Ask the engine thread to fail every sequence and return."""
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def take(self, *, wait: bool) -> tuple[list[Sequence], list[int], bool]:
        """Everything asked since the last call (waiting for something first if ``wait``): added, aborted, stop."""
        with self._cond:
            while wait and not (self._added or self._aborted or self._stopping):
                self._cond.wait()
            added, self._added = self._added, []
            aborted, self._aborted = self._aborted, []
            return added, aborted, self._stopping
