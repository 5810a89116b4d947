"""EngineClient: the event loop's side of the engine: submit, abort, deliver each step's events, stats."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections import defaultdict
from collections.abc import Sequence as Seq
from pathlib import Path

from streamserve.engine.config import EngineConfig
from streamserve.engine.constraint import Constraint, Grammars
from streamserve.engine.core import EngineCore, EngineStats
from streamserve.engine.errors import EngineStoppedError, QueueFullError, StreamBacklogError
from streamserve.engine.events import SequenceOutput
from streamserve.engine.sampling import SamplingParams
from streamserve.engine.sequence import Sequence
from streamserve.engine.stream import SequenceStream
from streamserve.llama import Model, ProbeSettings, guidance_tokenizer, load_model

logger = logging.getLogger("streamserve.engine")


class EngineClient:
    """Continuous batching over one llama.cpp model: an ``EngineCore`` on its own thread, driven from the loop.

    ``submit`` checks and queues sequences and returns their streams; ``abort`` stops one. The core hands
    each step's outputs over in one ``call_soon_threadsafe`` per event loop; they are put in the
    streams' queues here, on the loop, where a reader that fell ``max_backlog`` steps behind is cut
    off. Admission (how many sequences are in flight) is counted here too. Every method but
    ``start``, ``shutdown``, ``stop`` and ``close`` runs on the event loop.
    """

    def __init__(self, model: Model, config: EngineConfig) -> None:
        self.model = model
        self.config = config
        tokenizer = guidance_tokenizer(model)
        self.grammars = Grammars(tokenizer)
        self.core = EngineCore(model, config, tokenizer, self._from_engine)
        self._thread = threading.Thread(target=self.core.run, name="streamserve-engine", daemon=True)
        self._streams: dict[int, SequenceStream] = {}
        self._stopping = False

    @classmethod
    def load(cls, path: Path, config: EngineConfig) -> EngineClient:
        """Load the GGUF at ``path`` with CPU kernels proven safe here, and build an engine (not started yet)."""
        model = load_model(path, config.extra_bufts, ProbeSettings(config.max_num_batched_tokens, config.n_threads))
        try:
            return cls(model, config)
        except Exception:
            model.close()
            raise

    @property
    def tokenizer(self) -> Model:
        """The model's tokenizer (implements ``prompting.tokenizer.Tokenizer``)."""
        return self.model

    def start(self) -> None:
        """Start the engine thread and wait until its warm-up decode is done (first requests pay no page-in)."""
        self._thread.start()
        self.core.ready.wait()

    def shutdown(self, timeout: float = 30.0) -> None:
        """Refuse new sequences, fail open ones with EngineStoppedError and join the thread; idempotent."""
        self._stopping = True
        self.core.inbox.stop()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """``shutdown``, then free the batch and the context."""
        self.shutdown(timeout)
        self.core.close()

    def close(self) -> None:
        """``stop``, then free the model too (for engines made by ``load``)."""
        self.stop()
        self.model.close()

    def submit(self, requests: Seq[tuple[Seq[int], SamplingParams]]) -> list[SequenceStream]:
        """Queue one sequence per (prompt ids, parameters) pair, all or none.

        Raises QueueFullError when lanes plus queue cannot take them all now, ValueError when they never
        could (more than ``max_num_seqs + max_queue``), EngineStoppedError when stopping, and ``GrammarError``
        for a grammar llguidance refuses (compiled here, before anything is queued). A sequence stops
        counting when it finishes, fails or is aborted, before its stream's end reaches the client, so
        a client that sends its next request at once is never refused for its own last one.
        """
        capacity = self.config.max_num_seqs + self.config.max_queue
        if len(requests) > capacity:
            raise ValueError(f"{len(requests)} sequences can never fit {capacity} (max_num_seqs plus max_queue)")
        for prompt_ids, params in requests:
            if not prompt_ids:
                raise ValueError("a prompt must have at least one token")
            if params.max_tokens < 1:
                raise ValueError("max_tokens must be at least 1")
            if len(prompt_ids) + params.max_tokens > self.config.max_model_len:
                raise ValueError("prompt plus max_tokens exceeds the context size")
            if not all(0 <= t < self.model.n_vocab for t in prompt_ids):
                raise ValueError("prompt token id out of the vocabulary's range")
        loop = asyncio.get_running_loop()
        compiled: dict[str, Constraint] = {}
        seqs = []
        for ids, params in requests:
            constraint = None
            if params.grammar is not None:
                if params.grammar in compiled:
                    constraint = compiled[params.grammar].copy()
                else:
                    constraint = compiled[params.grammar] = self.grammars.compile(params.grammar)
            seqs.append(Sequence(list(ids), params, loop, constraint))
        if self._stopping:
            raise EngineStoppedError("the server is shutting down")
        if len(self._streams) + len(seqs) > capacity:
            raise QueueFullError("all sequence slots are busy and the queue is full")
        streams = [SequenceStream(seq.number, len(seq.prompt_ids), self.abort) for seq in seqs]
        self._streams.update((stream.number, stream) for stream in streams)
        self.core.inbox.add(seqs)
        return streams

    def generate(self, prompt_ids: Seq[int], params: SamplingParams) -> SequenceStream:
        """Queue one sequence; see ``submit``."""
        return self.submit([(prompt_ids, params)])[0]

    def abort(self, number: int) -> None:
        """Stop the sequence numbered ``number`` at the next step boundary; it stops counting for admission now."""
        if self._streams.pop(number, None) is not None:
            self.core.inbox.abort(number)

    def stats(self) -> EngineStats:
        """Current gauges and counters (the core's last snapshot: values may be one step old)."""
        snapshot = self.core.stats
        return dataclasses.replace(snapshot, waiting=max(0, len(self._streams) - snapshot.running))

    def _from_engine(self, outputs: list[tuple[Sequence, SequenceOutput]]) -> None:
        """On the engine thread: hand a step's outputs to the loops that wait for them, once per loop."""
        by_loop: dict[asyncio.AbstractEventLoop, list[SequenceOutput]] = defaultdict(list)
        for seq, output in outputs:
            if seq.loop is not None:
                by_loop[seq.loop].append(output)
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(self._deliver, items)
            except RuntimeError:
                logger.debug("event loop closed; dropped %d outputs", len(items))

    def _deliver(self, outputs: list[SequenceOutput]) -> None:
        """On the event loop: queue each output, unless its reader has fallen ``max_backlog`` steps behind.

        A client that stops reading (its TCP window full) stops draining its queue; past the bound its
        sequence is aborted with ``StreamBacklogError`` (after the events already queued), so it neither
        holds a lane nor grows memory while nobody reads.
        """
        for output in outputs:
            stream = self._streams.get(output.number)
            if stream is None:  # aborted: its reader is gone
                continue
            if output.done:
                del self._streams[output.number]
            elif stream.queue.qsize() >= self.config.max_backlog:
                stream.backlogged = True
                logger.warning("sequence %d aborted: its client left %d steps unread", output.number,
                               stream.queue.qsize())
                stream.queue.put_nowait(StreamBacklogError(
                    f"the client stopped reading: generation was stopped after {self.config.max_backlog} "
                    "unread steps"))
                self.abort(output.number)
                continue
            stream.queue.put_nowait(output)
