"""Scheduler: moves sequences between the waiting and running queues and picks each step's batch."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from streamserve.engine.lanes import LanePool
from streamserve.engine.sequence import Sequence, SequenceStatus


@dataclass(frozen=True, slots=True)
class Chunk:
    """Tokens of one sequence to decode this step, from position ``start``; ``sample`` wants the last one's logits."""

    seq: Sequence
    tokens: list[int]
    start: int
    sample: bool


class Scheduler:
    """Continuous batching: admits waiting sequences into free lanes at every step boundary.

    Each step carries one token for every decoding sequence plus prompt chunks of prefilling ones
    (chunked prefill), within the batch size and the prompt budget the caller gives, so a long new
    prompt does not freeze the streams already running.
    """

    def __init__(self, lanes: LanePool, *, max_batch_tokens: int) -> None:
        self.lanes = lanes
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.max_batch_tokens = max_batch_tokens

    def has_work(self) -> bool:
        """Whether a step would do anything."""
        return bool(self.running) or (bool(self.waiting) and self.lanes.num_free > 0)

    def add(self, seq: Sequence) -> None:
        """Queue a new sequence."""
        self.waiting.append(seq)

    def admit(self) -> list[Sequence]:
        """Move waiting sequences into free lanes (FIFO); return the newly admitted ones."""
        admitted = []
        while self.waiting and self.lanes.num_free > 0:
            seq = self.waiting.popleft()
            seq.lane, seq.num_cached, seq.copy_from = self.lanes.acquire(seq.prompt_ids)
            seq.num_computed = seq.num_cached
            seq.status = SequenceStatus.RUNNING
            self.running.append(seq)
            admitted.append(seq)
        return admitted

    def num_decoding(self) -> int:
        """Running sequences past their prompt: each takes one token of the next step."""
        return sum(not seq.is_prefilling for seq in self.running)

    def schedule(self, prompt_budget: int) -> list[Chunk]:
        """This step's work: every decoding sequence's last token, then prompt chunks of at most ``prompt_budget``."""
        chunks = [
            Chunk(seq, [seq.output_ids[-1]], seq.num_computed, True)
            for seq in self.running
            if not seq.is_prefilling
        ]
        budget = min(self.max_batch_tokens - len(chunks), prompt_budget)
        for seq in self.running:
            if budget <= 0:
                break
            if seq.is_prefilling:
                take = min(len(seq.prompt_ids) - seq.num_computed, budget)
                end = seq.num_computed + take
                chunks.append(Chunk(seq, seq.prompt_ids[seq.num_computed : end], seq.num_computed,
                                    end == len(seq.prompt_ids)))
                budget -= take
        return chunks

    def remove(self, seq: Sequence) -> None:
        """Take a sequence out of whichever queue holds it."""
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
