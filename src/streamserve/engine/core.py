"""EngineCore: the engine thread. Each step is schedule, run, postprocess, over every sequence at once."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import llguidance

from streamserve.engine.budget import PrefillBudget
from streamserve.engine.config import EngineConfig
from streamserve.engine.constraint import Masks
from streamserve.engine.errors import EngineError, EngineStoppedError
from streamserve.engine.events import FinishReason, SequenceOutput
from streamserve.engine.faults import runner_class
from streamserve.engine.inbox import Inbox
from streamserve.engine.lanes import LanePool
from streamserve.engine.scheduler import Scheduler
from streamserve.engine.sequence import Sequence, SequenceStatus
from streamserve.engine.speculation import DRAFT_MAX, Speculator
from streamserve.engine.turns import CPU, Turns
from streamserve.engine.verify_probe import MAX_ROW_COST, SAFE_ROWS, CallCost, VerifyProbe, probe_once
from streamserve.llama import Batch, Context, DecodeError, Model

logger = logging.getLogger("streamserve.engine")

ABORT_PHASES = ("waiting", "prefill", "decode")
"""Where a sequence was when it was aborted: queued for a lane, prefilling its prompt, or generating."""


@dataclass(frozen=True, slots=True)
class EngineStats:
    """A snapshot of the engine for metrics: gauges and monotonically growing counters.

    ``aborted_total`` counts aborted sequences by ``ABORT_PHASES`` phase (a client gone or too far
    behind, or, in decode, a stop string matched); ``lanes_free`` of ``lanes_total`` lanes hold no
    sequence. ``spec_draft_tokens_total`` draft tokens were verified, ``spec_accepted_tokens_total`` of them
    accepted; ``spec_ngram`` says whether sequences without a prediction draft from n-grams, and
    ``spec_exact_rows`` how many rows a verification may hold and give one-token steps' logits, as the
    startup probe found (docs/speculation.md).
    """

    running: int = 0
    waiting: int = 0
    kv_used_tokens: int = 0
    kv_capacity_tokens: int = 0
    prompt_tokens_total: int = 0
    cached_prompt_tokens_total: int = 0
    generation_tokens_total: int = 0
    lanes_free: int = 0
    lanes_total: int = 0
    aborted_total: tuple[tuple[str, int], ...] = ()
    spec_draft_tokens_total: int = 0
    spec_accepted_tokens_total: int = 0
    spec_ngram: bool = False
    spec_exact_rows: int = 0


Deliver = Callable[[list[tuple[Sequence, SequenceOutput]]], None]
"""Hands one step's outputs to the client; called on the engine thread."""


class EngineCore:
    """Continuous batching over one llama.cpp context, on a thread of its own (``run``).

    It owns everything the engine thread touches: the context, the scheduler and its lanes, the model
    runner, the prompt budget and the sequences it was given. The client talks to it only through the
    ``inbox`` (sequences to add, to abort, stop) and receives each step's outputs through ``deliver``;
    ``stats`` is an immutable snapshot, replaced after every step.
    """

    def __init__(self, model: Model, config: EngineConfig, tokenizer: llguidance.LLTokenizer, deliver: Deliver,
                 turns: Turns = CPU) -> None:
        self.model = model
        self.turns = turns
        self.config = config
        self.context = Context(model, n_ctx_seq=config.max_model_len, n_seq_max=config.max_num_seqs,
                               n_batch=config.max_num_batched_tokens, n_threads=config.n_threads)
        self.speculator = Speculator(config.speculative, deterministic=config.deterministic,
                                     max_model_len=config.max_model_len, is_eog=model.is_eog)
        self.scheduler = Scheduler(
            LanePool(config.max_num_seqs, config.prompt_grid), max_num_batched_tokens=config.max_num_batched_tokens,
            grid=config.prompt_grid, long_prefill=config.long_prefill_token_threshold,
            max_long_prefills=config.max_long_partial_prefills,
            prefill_chunks=config.prefill_chunks, max_model_len=config.max_model_len, is_eog=model.is_eog,
            speculator=self.speculator)
        self.budget = PrefillBudget(config.prefill_stall, step_time=config.prefill_step_time,
                                    ceiling=config.max_num_batched_tokens)
        self.runner = runner_class()(self.context, config.max_num_batched_tokens, Masks(tokenizer, config.max_num_seqs),
                                     grid=config.prompt_grid, deterministic=config.deterministic)
        self.inbox = Inbox()
        self.ready = threading.Event()
        self.stats = EngineStats(kv_capacity_tokens=config.max_model_len * config.max_num_seqs,
                                 lanes_free=config.max_num_seqs, lanes_total=config.max_num_seqs)
        self._deliver = deliver
        self._sequences: dict[int, Sequence] = {}
        self._prompt_tokens = 0
        self._cached_tokens = 0
        self._generated_tokens = 0
        self._drafted_tokens = 0
        self._accepted_tokens = 0
        self._aborted = dict.fromkeys(ABORT_PHASES, 0)

    def run(self) -> None:
        """The engine thread: warm up, then apply the inbox and step until told to stop."""
        self._warm_up()
        while True:
            added, aborted, stopping = self.inbox.take(wait=not self.scheduler.has_work())
            for seq in added:
                self._sequences[seq.number] = seq
                self.scheduler.add(seq)
            for number in aborted:
                self._abort(number)
            if stopping:
                self._deliver(self._fail(list(self._sequences.values()), EngineStoppedError(
                    "the server is shutting down")))
                return
            if self.scheduler.has_work():
                try:
                    with self.turns:
                        outputs = self.step()
                except Exception as exc:
                    logger.exception("engine step failed")
                    outputs = self._fail(list(self._sequences.values()), EngineError(f"internal engine error: {exc}"))
                self._publish()  # before the outputs: a reader that sees its sequence end sees the stats after it
                if outputs:
                    self._deliver(outputs)
            else:
                self._publish()

    def step(self) -> list[tuple[Sequence, SequenceOutput]]:
        """One step: admit and schedule, decode and draw, then record what it produced."""
        admitted = self.scheduler.admit()
        self.runner.prepare(admitted)
        for seq in admitted:
            seq.admit_time = time.monotonic()
            self._prompt_tokens += len(seq.prompt_ids)
            self._cached_tokens += seq.num_cached
        n_decoding = self.scheduler.num_decoding()
        # A prompt prefilled alone keeps no one waiting: whole batches, as fast as llama.cpp reads.
        budget = self.budget.ceiling if self.scheduler.prefills_alone() else self.budget.tokens(n_decoding)
        works = self.scheduler.schedule(budget)
        if not works:
            return []
        start = time.perf_counter()
        try:
            sampled = self.runner.run(works)
        except DecodeError as exc:
            seqs = list(dict.fromkeys(w.seq for w in works))
            logger.error("decode failed for %d sequences: %s", len(seqs), exc)
            return self._fail(seqs, EngineError(f"the model failed to compute this step ({exc}); this response "
                                                "was stopped, the server goes on serving"))
        if not any(w.kind == "verify" for w in works):  # the budget models prompt rows beside decode rows
            self.budget.observe(n_decoding, sum(len(w.tokens) for w in works) - n_decoding,
                                time.perf_counter() - start)
        outputs, failed = self.scheduler.postprocess(works, sampled)
        delivered = []
        for output in outputs:
            seq = self._sequences[output.number]
            self._generated_tokens += sum(e.finish is not FinishReason.EOG for e in output.events)
            self._drafted_tokens += output.drafted
            self._accepted_tokens += output.accepted
            delivered.append((seq, self._with_admission(seq, output)))
            if seq.is_done:
                self._forget(seq, keep_kv=True)
        errors = {s.seq.number: s.error for s in sampled if s.error is not None}
        for seq in failed:
            logger.warning("sequence %d failed: %s", seq.number, errors[seq.number])
            delivered += self._fail([seq], EngineError(str(errors[seq.number])))
        return delivered

    def _warm_up(self) -> None:
        # On the engine thread: llama.cpp decodes markedly slower from a thread other than the first to decode.
        batch = Batch(DRAFT_MAX + 1)
        try:
            first = (self.model.tokenize("Hi", add_special=False, parse_special=False) or [0])[0]
            for pos in range(2):  # the second, paged in, seeds the prompt budget's per-step overhead
                batch.clear()
                batch.add(first, pos, 0, True)
                with self.turns:
                    start = time.perf_counter()
                    self.context.decode(batch)
                    seconds = time.perf_counter() - start
            self.budget.observe(1, 0, seconds)
            if self.speculator.enabled and self.config.max_num_batched_tokens >= SAFE_ROWS:
                text = ("The quick brown fox jumps over the lazy dog, then runs far away into the green forest "
                        "and sleeps under an old oak tree until the morning sun wakes it again. The next day "
                        "it walks back along the river, past the mill and the bridge, to the farm where it began.")
                tokens = self.model.tokenize(text, add_special=False, parse_special=False)
                rows = min(DRAFT_MAX + 1, self.config.max_num_batched_tokens)  # llama.cpp aborts past n_batch
                with self.turns:
                    self.speculator.calibrate(probe_once(self.context, batch, tokens[: rows + 1],
                                                         self.config.n_threads, self.config.probe_cache))
            elif self.speculator.enabled:  # batches too small to verify a draft in
                self.speculator.calibrate(VerifyProbe(exact_rows=0, cost=CallCost.linear(MAX_ROW_COST)))
        finally:
            batch.close()
            self.context.remove(0)
            self._publish()
            self.ready.set()

    def _with_admission(self, seq: Sequence, output: SequenceOutput) -> SequenceOutput:
        queued = None if seq.admit_time is None else seq.admit_time - seq.arrival_time
        return dataclasses.replace(output, cached_tokens=seq.num_cached, queue_time=queued)

    def _abort(self, number: int) -> None:
        seq = self._sequences.get(number)
        if seq is None or seq.is_done:
            return
        phase = "waiting" if seq.status is SequenceStatus.WAITING else "prefill" if seq.is_prefilling else "decode"
        self._aborted[phase] += 1
        self.scheduler.finish(seq, SequenceStatus.ABORTED)
        self._forget(seq, keep_kv=True)

    def _fail(self, seqs: list[Sequence], error: EngineError) -> list[tuple[Sequence, SequenceOutput]]:
        """End ``seqs`` with ``error``; their lanes are cleared, not kept as prompt cache."""
        outputs = []
        for seq in seqs:
            if seq.is_done:
                continue
            self.scheduler.finish(seq, SequenceStatus.ABORTED, keep_kv=False)
            self._forget(seq, keep_kv=False)
            outputs.append((seq, self._with_admission(seq, SequenceOutput(seq.number, error=error))))
        return outputs

    def _forget(self, seq: Sequence, *, keep_kv: bool) -> None:
        self.runner.release(seq, keep_kv=keep_kv)
        self._sequences.pop(seq.number, None)

    def _publish(self) -> None:
        running = self.scheduler.running
        lanes = self.scheduler.lanes
        self.stats = EngineStats(
            running=len(running),
            waiting=len(self.scheduler.waiting),
            kv_used_tokens=lanes.cached_tokens() + sum(s.num_computed for s in running),
            kv_capacity_tokens=self.config.max_model_len * self.config.max_num_seqs,
            prompt_tokens_total=self._prompt_tokens,
            cached_prompt_tokens_total=self._cached_tokens,
            generation_tokens_total=self._generated_tokens,
            lanes_free=lanes.num_free,
            lanes_total=self.config.max_num_seqs,
            aborted_total=tuple(self._aborted.items()),
            spec_draft_tokens_total=self._drafted_tokens,
            spec_accepted_tokens_total=self._accepted_tokens,
            spec_ngram=self.speculator.ngram,
            spec_exact_rows=self.speculator.exact_rows if self.speculator.enabled else 0,
        )

    def close(self) -> None:
        """Free the batch and the context (after ``run`` has returned)."""
        self.runner.close()
        self.context.close()
