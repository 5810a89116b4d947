"""Engine: one thread that runs schedule -> run -> postprocess steps over all sequences."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from pathlib import Path

from streamserve.engine.budget import PrefillBudget
from streamserve.engine.config import EngineConfig
from streamserve.engine.constraint import Constraint, Constraints
from streamserve.engine.errors import EngineError, EngineStoppedError, QueueFullError, StreamBacklogError
from streamserve.engine.events import FinishReason, TokenEvent
from streamserve.engine.faults import FaultInjector
from streamserve.engine.lanes import LanePool, grid_extent
from streamserve.engine.runner import ModelRunner, Sampled
from streamserve.engine.sampling import SamplingParams
from streamserve.engine.scheduler import Chunk, Scheduler
from streamserve.engine.sequence import Delivery, Sequence, SequenceStatus
from streamserve.engine.stream import SequenceStream
from streamserve.llama import Batch, Context, DecodeError, Model, ProbeSettings, Sampler, guidance_tokenizer, load_model

logger = logging.getLogger("streamserve.engine")


ABORT_PHASES = ("waiting", "prefill", "decode")
"""Where a sequence was when it was aborted: queued for a lane, reading its prompt, or generating."""


@dataclass(frozen=True, slots=True)
class EngineStats:
    """A snapshot of the engine for metrics: gauges and monotonically growing counters.

    ``aborted_total`` counts aborted sequences by ``ABORT_PHASES`` phase (a client gone or too far
    behind, or, in decode, a stop string matched); ``lanes_free`` of ``lanes_total`` lanes hold no
    sequence.
    """

    running: int
    waiting: int
    kv_used_tokens: int
    kv_capacity_tokens: int
    prompt_tokens_total: int
    cached_prompt_tokens_total: int
    generation_tokens_total: int
    lanes_free: int = 0
    lanes_total: int = 0
    aborted_total: tuple[tuple[str, int], ...] = ()


class Engine:
    """Continuous batching over one llama.cpp model in a dedicated thread.

    The asyncio side calls ``submit`` (returns one ``SequenceStream`` per sampling parameter set)
    and ``abort``; both only queue a command. The engine thread applies commands at step
    boundaries and hands each step's events to the event loop in one ``call_soon_threadsafe``.
    """

    def __init__(self, model: Model, config: EngineConfig) -> None:
        self.model = model
        self.config = config
        self.context = Context(
            model,
            n_ctx_seq=config.ctx_size,
            n_seq_max=config.parallel,
            n_batch=config.max_batch_tokens,
            n_threads=config.n_threads,
        )
        self.lanes = LanePool(config.parallel, config.prompt_grid)
        self.scheduler = Scheduler(self.lanes, max_batch_tokens=config.max_batch_tokens, grid=config.prompt_grid,
                                   long_prompt=config.long_prompt, max_long_reads=config.max_long_reads,
                                   read_chunks=config.read_chunks)
        self.budget = PrefillBudget(config.prefill_stall, step_time=config.prefill_step_time,
                                    ceiling=config.max_batch_tokens)
        self.constraints = Constraints(lambda: guidance_tokenizer(model), config.parallel)
        self.runner = ModelRunner(self.context, config.max_batch_tokens, self.constraints, grid=config.prompt_grid,
                                  deterministic=config.deterministic)
        self._faults = FaultInjector()
        self._cond = threading.Condition()
        self._commands: list[tuple[str, Sequence]] = []
        self._admitted: set[Sequence] = set()  # what admission counts: submitted, not yet over
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="streamserve-engine", daemon=True)
        self._warm = threading.Event()
        self._prompt_tokens = 0
        self._cached_tokens = 0
        self._generated_tokens = 0
        self._aborted = dict.fromkeys(ABORT_PHASES, 0)

    @classmethod
    def load(cls, path: Path, config: EngineConfig) -> Engine:
        """Load the GGUF at ``path`` with CPU kernels proven safe here, and build an engine (not started yet)."""
        model = load_model(path, config.extra_bufts, ProbeSettings(config.max_batch_tokens, config.n_threads))
        try:
            return cls(model, config)
        except Exception:
            model.close()
            raise

    @property
    def tokenizer(self) -> Model:
        """The model's tokenizer (implements ``streaming.tokenizer.Tokenizer``)."""
        return self.model

    def start(self) -> None:
        """Start the engine thread and wait until its warm-up decode is done (first requests pay no page-in)."""
        self._thread.start()
        self._warm.wait()

    def _warm_up(self) -> None:
        # On the engine thread: llama.cpp decodes markedly slower from a thread other than the first to decode.
        batch = Batch(1)
        try:
            first = (self.model.tokenize("Hi", add_special=False, parse_special=False) or [0])[0]
            for pos in range(2):  # the second, paged in, seeds the prompt budget's per-step overhead
                batch.clear()
                batch.add(first, pos, 0, True)
                start = time.perf_counter()
                self.context.decode(batch)
            self.budget.observe(1, 0, time.perf_counter() - start)
        finally:
            batch.close()
            self.context.remove(0)
            self._warm.set()

    def shutdown(self, timeout: float = 30.0) -> None:
        """Refuse new sequences, fail open ones with EngineStoppedError and join the thread; idempotent."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """``shutdown``, then free the batch and the context."""
        self.shutdown(timeout)
        self.runner.close()
        self.context.close()

    def close(self) -> None:
        """``stop``, then free the model too (for engines made by ``load``)."""
        self.stop()
        self.model.close()

    def submit(self, requests: Seq[tuple[Seq[int], SamplingParams]]) -> list[SequenceStream]:
        """Queue one sequence per (prompt ids, parameters) pair, all or none; must run on the event loop.

        Raises QueueFullError when lanes plus queue cannot take them all now, ValueError when they never
        could (more than ``parallel + max_queue``), EngineStoppedError when stopping, and ``GrammarError``
        for a grammar llguidance refuses (compiled here, before anything is queued). A sequence stops
        counting when it finishes, fails or is aborted (``abort``), before its stream's end reaches the
        client, so a client that sends its next request at once is never refused for its own last one.
        """
        capacity = self.config.parallel + self.config.max_queue
        if len(requests) > capacity:
            raise ValueError(f"{len(requests)} sequences can never fit {capacity} (parallel plus max_queue)")
        for prompt_ids, params in requests:
            if not prompt_ids:
                raise ValueError("a prompt must have at least one token")
            if params.max_tokens < 1:
                raise ValueError("max_tokens must be at least 1")
            if len(prompt_ids) + params.max_tokens > self.config.ctx_size:
                raise ValueError("prompt plus max_tokens exceeds the context size")
            if not all(0 <= t < self.model.n_vocab for t in prompt_ids):
                raise ValueError("prompt token id out of the vocabulary's range")
        loop = asyncio.get_running_loop()
        seqs = [Sequence(list(ids), params, loop, asyncio.Queue()) for ids, params in requests]
        compiled: dict[str, Constraint] = {}
        for seq in seqs:
            grammar = seq.params.grammar
            if grammar is None:
                continue
            if grammar in compiled:
                seq.constraint = compiled[grammar].copy()
            else:
                seq.constraint = compiled[grammar] = self.constraints.compile(grammar)
        with self._cond:
            if self._stopping:
                raise EngineStoppedError("the server is shutting down")
            if len(self._admitted) + len(seqs) > capacity:
                raise QueueFullError("all sequence slots are busy and the queue is full")
            self._admitted.update(seqs)
            self._commands.extend(("add", seq) for seq in seqs)
            self._cond.notify()
        return [SequenceStream(self, seq) for seq in seqs]

    def generate(self, prompt_ids: Seq[int], params: SamplingParams) -> SequenceStream:
        """Queue one sequence; see ``submit``."""
        return self.submit([(prompt_ids, params)])[0]

    def abort(self, seq: Sequence) -> None:
        """Stop a sequence at the next step boundary; it stops counting for admission now. Any thread."""
        with self._cond:
            self._admitted.discard(seq)
            self._commands.append(("abort", seq))
            self._cond.notify()

    def stats(self) -> EngineStats:
        """Current gauges and counters (read without locking: values may be one step old)."""
        running = list(self.scheduler.running)
        with self._cond:
            waiting = sum(seq.status is SequenceStatus.WAITING for seq in self._admitted)
        return EngineStats(
            running=len(running),
            waiting=waiting,
            kv_used_tokens=self.lanes.cached_tokens() + sum(s.num_computed for s in running),
            kv_capacity_tokens=self.config.ctx_size * self.config.parallel,
            prompt_tokens_total=self._prompt_tokens,
            cached_prompt_tokens_total=self._cached_tokens,
            generation_tokens_total=self._generated_tokens,
            lanes_free=self.lanes.num_free,
            lanes_total=self.config.parallel,
            aborted_total=tuple(self._aborted.items()),
        )

    def _loop(self) -> None:
        self._warm_up()
        while True:
            with self._cond:
                while not (self._commands or self._stopping or self.scheduler.has_work()):
                    self._cond.wait()
                commands, self._commands = self._commands, []
                stopping = self._stopping
            for kind, seq in commands:
                if kind == "add":
                    self.scheduler.add(seq)
                else:
                    self._abort(seq)
            if stopping:
                self._fail_all(EngineStoppedError("the server is shutting down"))
                return
            if not self.scheduler.has_work():
                continue
            try:
                self._step()
            except Exception as exc:
                logger.exception("engine step failed")
                self._fail_all(EngineError(f"internal engine error: {exc}"))

    def _step(self) -> None:
        for seq in self.scheduler.admit():
            self._prepare(seq)
        n_decoding = self.scheduler.num_decoding()
        # A prompt read alone keeps no one waiting: it is read in whole batches, as fast as llama.cpp reads.
        alone = self.scheduler.reads_alone()
        chunks = self.scheduler.schedule(self.budget.ceiling if alone else self.budget.tokens(n_decoding))
        if not chunks:
            return
        start = time.perf_counter()
        try:
            self._faults.before_decode()
            sampled = self.runner.run(chunks)
        except DecodeError as exc:
            seqs = list(dict.fromkeys(c.seq for c in chunks))
            logger.error("decode failed for %d sequences: %s", len(seqs), exc)
            error = EngineError(f"the model failed to compute this step ({exc}); this response was stopped, "
                                "the server goes on serving")
            self._deliver([(seq, self._fail(seq, error)) for seq in seqs])
            return
        self.budget.observe(n_decoding, sum(len(c.tokens) for c in chunks) - n_decoding, time.perf_counter() - start)
        self._deliver(self._postprocess(chunks, sampled))

    def _prepare(self, seq: Sequence) -> None:
        if seq.copy_from is not None:
            self.context.copy(seq.copy_from, seq.lane)
        if not self.context.remove(seq.lane, seq.num_cached, -1):
            self.context.remove(seq.lane)
            self.lanes.hold(seq.lane, [], 0)
            seq.num_cached = seq.num_computed = 0
        seq.admit_time = time.monotonic()
        p = seq.params
        seed = p.seed if p.seed is not None else random.getrandbits(32)
        seq.sampler = Sampler(
            self.model.n_vocab,
            temperature=p.temperature,
            top_p=p.top_p,
            top_k=p.top_k,
            min_p=p.min_p,
            seed=seed,
            presence_penalty=p.presence_penalty,
            frequency_penalty=p.frequency_penalty,
            repetition_penalty=p.repetition_penalty,
            logit_bias=p.logit_bias,
        )
        self._prompt_tokens += len(seq.prompt_ids)
        self._cached_tokens += seq.num_cached

    def _postprocess(self, chunks: list[Chunk], sampled: list[Sampled]) -> list[tuple[Sequence, Delivery]]:
        for chunk in chunks:
            seq = chunk.seq
            seq.num_computed += len(chunk.tokens)
            if chunk.kind in ("grid", "tail"):  # later prompts may copy what is read so far
                self.lanes.hold_read(seq.lane, seq.prompt_ids, seq.num_computed)
        deliveries: list[tuple[Sequence, Delivery]] = []
        for s in sampled:
            seq = s.seq
            seq.first_logits = None
            if s.prompt_logits is not None:  # the same prompt again may start from here, without a read
                self.lanes.hold_prompt(seq.lane, seq.prompt_ids, s.prompt_logits)
            if s.error is not None:
                logger.warning("sequence %d failed: %s", seq.number, s.error)
                deliveries.append((seq, self._fail(seq, EngineError(s.error))))
                continue
            finish = None
            if s.token_id in seq.params.stop_token_ids or (
                self.model.is_eog(s.token_id) and not seq.params.ignore_eos
            ):
                finish = FinishReason.EOG
            else:
                seq.output_ids.append(s.token_id)
                self._generated_tokens += 1
                if len(seq.output_ids) >= seq.params.max_tokens or seq.num_tokens >= self.config.ctx_size:
                    finish = FinishReason.LENGTH
            events = [TokenEvent(s.token_id, s.logprob, s.top_logprobs, finish)]
            if s.complete and finish is None:
                # The grammar is finished: end of generation is the only possible next token, so skip its decode.
                assert seq.constraint is not None
                finish = FinishReason.EOG
                events.append(TokenEvent(seq.constraint.eos_token, finish=finish))
            deliveries.append((seq, events))
            if finish is not None:
                self._release(seq, SequenceStatus.FINISHED)
        return deliveries

    def _abort(self, seq: Sequence) -> None:
        if seq.is_done:
            return
        waiting = seq.status is SequenceStatus.WAITING
        self._aborted["waiting" if waiting else "prefill" if seq.is_prefilling else "decode"] += 1
        self._release(seq, SequenceStatus.ABORTED)

    def _release(self, seq: Sequence, status: SequenceStatus, *, keep_kv: bool = True) -> None:
        if seq.is_done:
            return
        self.scheduler.remove(seq)
        if seq.lane >= 0:
            if not keep_kv:
                self.context.remove(seq.lane)
            extent = min(seq.num_computed, grid_extent(len(seq.prompt_ids), self.config.prompt_grid))
            self.lanes.release(seq.lane, seq.tokens_in_kv() if keep_kv else [], extent if keep_kv else 0)
        if seq.sampler is not None:
            seq.sampler.close()
            seq.sampler = None
        seq.constraint = None
        seq.status = status
        with self._cond:
            self._admitted.discard(seq)

    def _fail(self, seq: Sequence, exc: Exception) -> Delivery:
        self._release(seq, SequenceStatus.ABORTED, keep_kv=False)
        return exc if isinstance(exc, EngineError) else EngineError(str(exc))

    def _fail_all(self, exc: EngineError) -> None:
        seqs = list(self.scheduler.running) + list(self.scheduler.waiting)
        self._deliver([(seq, self._fail(seq, exc)) for seq in seqs])

    def _deliver(self, deliveries: Iterable[tuple[Sequence, Delivery]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Sequence, Delivery]]] = defaultdict(list)
        for seq, item in deliveries:
            by_loop[seq.loop].append((seq, item))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(self._put_all, items)
            except RuntimeError:
                logger.debug("event loop closed; dropped %d deliveries", len(items))

    def _put_all(self, items: list[tuple[Sequence, Delivery]]) -> None:
        """On the event loop: queue each delivery, unless its reader has fallen ``max_backlog`` steps behind.

        A client that stops reading (its TCP window full) stops draining its queue; past the bound its
        sequence is aborted with ``StreamBacklogError`` (after the events already queued), so it neither
        holds a lane nor grows memory while nobody reads.
        """
        for seq, item in items:
            if seq.backlogged:
                continue
            if not isinstance(item, BaseException) and seq.queue.qsize() >= self.config.max_backlog:
                seq.backlogged = True
                logger.warning("sequence %d aborted: its client left %d steps unread", seq.number,
                               seq.queue.qsize())
                seq.queue.put_nowait(StreamBacklogError(
                    f"the client stopped reading: generation was stopped after {self.config.max_backlog} "
                    "unread steps"))
                self.abort(seq)
                continue
            seq.queue.put_nowait(item)
