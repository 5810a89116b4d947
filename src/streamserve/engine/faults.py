"""Test-only fault injection, chosen once at startup by an environment variable that production never sets.

``STREAMSERVE_FAULT_DECODE_STEP=N`` makes the N-th decode step (counted from the first after warm-up)
fail as a llama.cpp decode failure would, so tests can prove that such a failure ends only that step's
sequences and that the engine goes on serving. Without it the engine runs the plain ``ModelRunner``:
no check on any step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from streamserve.engine.runner import ModelRunner
from streamserve.engine.work import Sampled, Work
from streamserve.llama import DecodeError

DECODE_STEP_ENV = "STREAMSERVE_FAULT_DECODE_STEP"


class FaultyRunner(ModelRunner):
    """A ``ModelRunner`` whose ``run`` raises ``DecodeError`` at the configured step."""

    decode_step = 0

    def run(self, works: list[Work]) -> list[Sampled]:
        """Count this step; fail it if it is the configured one, else decode as usual."""
        self._steps = getattr(self, "_steps", 0) + 1
        if self._steps == self.decode_step:
            raise DecodeError(-1)
        return super().run(works)


def runner_class(environ: Mapping[str, str] = os.environ) -> type[ModelRunner]:
    """The runner to build: ``FaultyRunner`` when the environment asks for a fault, else ``ModelRunner``."""
    step = int(environ.get(DECODE_STEP_ENV) or 0)
    if not step:
        return ModelRunner
    return type("FaultyRunner", (FaultyRunner,), {"decode_step": step})
