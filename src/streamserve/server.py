"""Server: uvicorn with a graceful drain, so a restart finishes the streams in flight instead of cutting them.

On the first SIGTERM or Ctrl-C the server stops admitting (new requests get 503 with ``Retry-After``,
``/health`` says ``draining``) and lets running sequences finish for up to ``grace`` seconds; then the
engine stops, ending any stream still open with an error event and ``[DONE]``, and uvicorn exits. A
second signal skips what is left of the grace. SIGTERM exits 0; Ctrl-C exits as an interrupt (130).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from types import FrameType

import uvicorn

from streamserve.api.state import ServerState

logger = logging.getLogger("streamserve")

_POLL_S = 0.1


class Server(uvicorn.Server):
    """``uvicorn.Server`` whose exit signals drain the engine first."""

    def __init__(self, config: uvicorn.Config, state: ServerState, grace: float) -> None:
        super().__init__(config)
        self.state = state
        self.grace = grace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Task[None] | None = None
        self._hurry = False
        self.interrupted = False  # a Ctrl-C came: the process exits 130 (cli), not 0

    async def serve(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        """Serve, remembering the loop the signal handler hands the drain to."""
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)  # type: ignore[arg-type]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """First signal: begin draining. Later ones: end it now (a third Ctrl-C forces uvicorn out)."""
        self.interrupted = self.interrupted or sig == signal.SIGINT
        if self._loop is None or self.should_exit:
            super().handle_exit(sig, frame)
            return
        if self._drain is not None:
            self._hurry = True
            return
        self.state.draining = True
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        self._drain = asyncio.ensure_future(self._drain_engine())

    async def _drain_engine(self) -> None:
        engines = [loaded.engine for loaded in self.state.loaded()]
        deadline = time.monotonic() + self.grace

        def open_sequences() -> tuple[int, int]:
            stats = [engine.stats() for engine in engines]
            return sum(s.running for s in stats), sum(s.waiting for s in stats)

        running, waiting = open_sequences()
        if running or waiting:
            logger.info("draining: %d running and %d waiting sequences may finish within %.0f s",
                        running, waiting, self.grace)
        while (running or waiting) and time.monotonic() < deadline and not self._hurry:
            await asyncio.sleep(_POLL_S)
            running, waiting = open_sequences()
        if running or waiting:
            logger.warning("shutdown grace over: ending %d open sequences", running + waiting)
        self.state.shutting_down = True
        await asyncio.gather(*(asyncio.to_thread(engine.shutdown) for engine in engines))
        self.should_exit = True
