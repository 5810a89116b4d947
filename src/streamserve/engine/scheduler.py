"""Scheduler: the waiting and running queues, the KV lanes they hold, each step's work and what it produced."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from streamserve.engine.events import FinishReason, SequenceOutput, TokenEvent
from streamserve.engine.lanes import LanePool, grid_extent, reusable_prefix
from streamserve.engine.prefill import prompt_shares, unfilled, whole_units
from streamserve.engine.sequence import Sequence, SequenceStatus
from streamserve.engine.speculation import DRAFT_MAX, Speculator
from streamserve.engine.work import Sampled, Work


class Scheduler:
    """Continuous batching: admits waiting sequences into free lanes, picks each step's work, records its results.

    Each step carries one token for every decoding sequence plus prompt units of prefilling ones
    (chunked prefill), within the batch size and the prompt budget the caller gives, so a long new
    prompt neither freezes the running streams nor makes a short one wait behind it
    (``prefill.prompt_shares``, ``prefill.whole_units``). The scheduler owns the lanes: it acquires one
    at admission, records what each prefill and each finished sequence leaves in it, and gives it back.
    """

    def __init__(self, lanes: LanePool, *, max_num_batched_tokens: int, grid: int, long_prefill: int = 0,
                 max_long_prefills: int = 0, prefill_chunks: int = 1, max_model_len: int = 0,
                 is_eog: Callable[[int], bool] = lambda token: False, speculator: Speculator | None = None) -> None:
        self.lanes = lanes
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.max_num_batched_tokens = max_num_batched_tokens
        self.grid = grid
        self.long_prefill = long_prefill
        self.max_long_prefills = max_long_prefills
        self.prefill_chunks = prefill_chunks
        self.max_model_len = max_model_len
        self.is_eog = is_eog
        self.speculator = speculator

    def has_work(self) -> bool:
        """Whether a step would do anything."""
        return bool(self.running) or (bool(self.waiting) and self.lanes.num_free > 0)

    def add(self, seq: Sequence) -> None:
        """Queue a new sequence."""
        self.waiting.append(seq)

    def admit(self) -> list[Sequence]:
        """Move waiting sequences into free lanes in arrival order; return the newly admitted ones.

        Two kinds of sequence wait without a lane while those behind them go first (``_waits``):

        - a *long* prompt, one with more than ``long_prefill`` tokens to prefill after the prompt cache,
          while ``max_long_prefills`` long prefills are under way (0: no limit). Prefilling two at once
          would finish neither sooner (``prompt_shares`` gives the budget to the shortest), while the
          second's lane sat idle that long and short requests queued for it;
        - a prompt that a running sequence is prefilling right now, at least one grid chunk of it beyond
          what the lanes hold, or the very same prompt (the other choices of an ``n`` > 1 request, the
          same document or request sent twice): it copies that prefill once it is done instead of
          prefilling it again (all of it, when the prompts are the same).

        A waiting sequence keeps its place, so it waits at most for the prefills ahead of it.
        """
        admitted: list[Sequence] = []
        passed: list[Sequence] = []
        long_prefills = sum(unfilled(seq) > self.long_prefill for seq in self.running)
        while self.waiting and self.lanes.num_free > 0:
            seq = self.waiting.popleft()
            if self._waits(seq, long_prefills):
                passed.append(seq)
                continue
            seq.lane, seq.num_cached, seq.copy_from = self.lanes.acquire(seq.prompt_ids)
            seq.num_computed = seq.num_cached
            if seq.num_cached == len(seq.prompt_ids):
                seq.first_logits = self.lanes.whole_prompt_logits(seq.lane)
            seq.status = SequenceStatus.RUNNING
            self.running.append(seq)
            admitted.append(seq)
            long_prefills += unfilled(seq) > self.long_prefill
        self.waiting.extendleft(reversed(passed))
        return admitted

    def _waits(self, seq: Sequence, long_prefills: int) -> bool:
        """Whether ``seq`` should wait for a prefill under way: a long prefill's turn, or its own prompt's."""
        prompt = seq.prompt_ids
        prefilling = [other for other in self.running if other.is_prefilling]
        if any(other.prompt_ids == prompt for other in prefilling):
            return True
        if len(prompt) <= self.grid:
            return False
        cached = self.lanes.best_reuse(prompt)
        if (self.max_long_prefills and long_prefills >= self.max_long_prefills
                and len(prompt) - cached > self.long_prefill):
            return True
        return any(reusable_prefix(other.prompt_ids, len(other.prompt_ids), prompt, self.grid) >= cached + self.grid
                   for other in prefilling)

    def prefills_alone(self) -> bool:
        """Whether one prompt is being prefilled and nothing else runs or waits: a long step keeps no one waiting."""
        return len(self.running) == 1 and self.running[0].is_prefilling and not self.waiting

    def num_decoding(self) -> int:
        """Running sequences decoding: each takes one token of the next step."""
        return sum(seq.is_decoding for seq in self.running)

    def schedule(self, prompt_budget: int) -> list[Work]:
        """This step's work: every decoding sequence's last token, then prompt units within ``prompt_budget``.

        ``prompt_shares`` grants each prefilling sequence its tokens of the budget (raised to one
        token per prefilling sequence if it is smaller, so none stalls); the grant adds to the
        sequence's ``prompt_credit``, and ``whole_units`` prefills the credit in whole grid chunks and
        whole tails, within the budget (at least ``prefill_chunks`` grid chunks) and the batch size.
        """
        prefilling = [seq for seq in self.running if seq.is_prefilling]
        n_decoding = -1 if prefilling else self.num_decoding()  # -1: nothing is drafted while a prompt is read
        room = min(DRAFT_MAX, self.max_num_batched_tokens - 1)  # the step's drafts share one draft's rows
        works = []
        for seq in self.running:
            if seq.is_prefilling:
                continue
            work = self._decode_work(seq, n_decoding, room) if seq.output_ids else Work(
                seq, [], seq.num_computed, True, "cached")
            room -= len(work.draft)
            works.append(work)
        granting = [seq for seq in prefilling if unfilled(seq) > seq.prompt_credit]
        capacity = self.max_num_batched_tokens - sum(len(w.tokens) for w in works)
        budget = min(capacity, max(prompt_budget, len(granting)))
        for seq, take in prompt_shares(granting, budget):
            seq.prompt_credit += take
        # Prefills stay within the step's budget too (one unit at least), so banked credit of several
        # prompts never lands in one long step that would stall the decoding streams.
        unit = min(self.prefill_chunks * self.grid, max(self.grid, grid_extent(capacity, self.grid)))
        for seq, take in whole_units(prefilling, min(capacity, max(budget, unit)), self.grid, unit):
            seq.prompt_credit -= take
            start, end = seq.num_computed, seq.num_computed + take
            full = grid_extent(len(seq.prompt_ids), self.grid)
            if start < min(end, full):
                last = end == full == len(seq.prompt_ids)
                works.append(Work(seq, seq.prompt_ids[start : min(end, full)], start, last, "grid"))
            if end > full:
                works.append(Work(seq, seq.prompt_ids[full:end], full, True, "tail"))
        return works

    def _decode_work(self, seq: Sequence, n_decoding: int, room: int) -> Work:
        """A decoding sequence's work: its last token, with a draft to verify when the speculator has one.

        Nothing is drafted while a prompt is being read (``n_decoding`` -1), so prefill steps stay as they were.
        """
        draft = []
        if n_decoding >= 0 and self.speculator is not None:
            draft = self.speculator.draft(seq, n_decoding, room)
        return Work(seq, [seq.output_ids[-1], *draft], seq.num_computed, True, "verify" if draft else "decode")

    def postprocess(self, works: list[Work], sampled: list[Sampled]) -> tuple[list[SequenceOutput], list[Sequence]]:
        """Record a step: tokens prefilled into lanes, tokens drawn, sequences finished (their lanes freed).

        Returns each sampled sequence's output and the sequences that failed (a matcher error): the
        caller fails those, so their lanes are cleared rather than kept as prompt cache.
        """
        drafted: dict[Sequence, int] = {}
        for work in works:
            seq = work.seq
            if work.kind == "verify":  # the lane keeps a position for each token emitted (runner._verify)
                drafted[seq] = len(work.draft)
                seq.num_computed += sum(s.seq is seq for s in sampled)
            else:
                seq.num_computed += len(work.tokens)
            if work.kind in ("grid", "tail"):  # later prompts may copy what is prefilled so far
                self.lanes.hold_prefill(seq.lane, seq.prompt_ids, seq.num_computed)
        events: dict[Sequence, list[TokenEvent]] = {}
        accepted: dict[Sequence, int] = {}
        failed: list[Sequence] = []
        for s in sampled:
            seq = s.seq
            if seq.is_done or seq in failed:  # ended by an earlier token of its verified draft
                continue
            seq.first_logits = None
            if s.prompt_logits is not None:  # the same prompt again may start from here, without a prefill
                self.lanes.hold_prompt(seq.lane, seq.prompt_ids, s.prompt_logits)
            if s.error is not None:
                failed.append(seq)
                continue
            finish = None
            if s.token_id in seq.params.stop_token_ids or (self.is_eog(s.token_id) and not seq.params.ignore_eos):
                finish = FinishReason.EOG
            else:
                seq.output_ids.append(s.token_id)
                if len(seq.output_ids) >= seq.params.max_tokens or seq.num_tokens >= self.max_model_len:
                    finish = FinishReason.LENGTH
            emitted = events.setdefault(seq, [])
            emitted.append(TokenEvent(s.token_id, s.logprob, s.top_logprobs, finish))
            accepted[seq] = accepted.get(seq, 0) + s.accepted
            if s.complete and finish is None:
                # The grammar is finished: end of generation is the only possible next token, so skip its decode.
                assert seq.constraint is not None
                finish = FinishReason.EOG
                emitted.append(TokenEvent(seq.constraint.eos_token, finish=finish))
            if finish is not None:
                self.finish(seq, SequenceStatus.FINISHED)
        outputs = []
        for seq, emitted in events.items():
            outputs.append(SequenceOutput(seq.number, tuple(emitted), drafted=drafted.get(seq, 0),
                                          accepted=accepted.get(seq, 0)))
            if self.speculator is not None:
                self.speculator.observe(seq, drafted.get(seq, 0), accepted.get(seq, 0), emitted[0].token_id)
        return outputs, failed

    def finish(self, seq: Sequence, status: SequenceStatus, *, keep_kv: bool = True) -> None:
        """Take a sequence out of the queues and give its lane back, keeping what it holds as prompt cache
        (``keep_kv``; otherwise the caller clears the lane's KV memory)."""
        if seq.is_done:
            return
        self.remove(seq)
        if seq.lane >= 0:
            extent = min(seq.num_computed, grid_extent(len(seq.prompt_ids), self.grid))
            self.lanes.release(seq.lane, seq.tokens_in_kv() if keep_kv else [], extent if keep_kv else 0)
        seq.status = status

    def remove(self, seq: Sequence) -> None:
        """Take a sequence out of whichever queue holds it (its lane is ``finish``'s to give back)."""
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
