"""Test-only fault injection, switched on by an environment variable that production never sets.

``STREAMSERVE_FAULT_DECODE_STEP=N`` makes the N-th decode step (counted from the first after warm-up)
fail as a llama.cpp decode failure would, so tests can prove that such a failure ends only that step's
sequences and that the engine goes on serving.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from streamserve.llama import DecodeError

DECODE_STEP_ENV = "STREAMSERVE_FAULT_DECODE_STEP"


class FaultInjector:
    """Counts decode steps and raises ``DecodeError`` at the configured one (never, when unset)."""

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        self.decode_step = int(environ.get(DECODE_STEP_ENV) or 0)
        self._steps = 0

    def before_decode(self) -> None:
        """Called before every decode step."""
        if self.decode_step:
            self._steps += 1
            if self._steps == self.decode_step:
                raise DecodeError(-1)
