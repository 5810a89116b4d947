"""Errors a sequence's stream can raise."""

from __future__ import annotations


class EngineError(RuntimeError):
    """The engine failed this sequence (a llama.cpp failure); other sequences go on."""


class QueueFullError(EngineError):
    """Every lane is busy and the waiting queue is full; retry later."""


class EngineStoppedError(EngineError):
    """The engine is shutting down or stopped."""


class StreamBacklogError(EngineError):
    """The sequence's reader fell too far behind (a client that stopped reading): it was aborted."""
