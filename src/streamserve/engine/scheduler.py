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
    (chunked prefill), within the batch size and the prompt budget the caller gives (bounded in
    time by ``PrefillBudget``), so a long new prompt neither freezes the running streams nor makes a
    short one wait behind it. ``prompt_shares`` is the one place that decides which prompt tokens go
    into a step.
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
        """This step's work: every decoding sequence's last token, then prompt chunks of at most ``prompt_budget``.

        The budget is raised to one token per prefilling sequence if it is smaller, so none stalls.
        """
        chunks = [
            Chunk(seq, [seq.output_ids[-1]], seq.num_computed, True)
            for seq in self.running
            if not seq.is_prefilling
        ]
        prefilling = [seq for seq in self.running if seq.is_prefilling]
        budget = min(self.max_batch_tokens - len(chunks), max(prompt_budget, len(prefilling)))
        for seq, take in prompt_shares(prefilling, budget):
            end = seq.num_computed + take
            chunks.append(Chunk(seq, seq.prompt_ids[seq.num_computed : end], seq.num_computed,
                                end == len(seq.prompt_ids)))
        return chunks

    def remove(self, seq: Sequence) -> None:
        """Take a sequence out of whichever queue holds it."""
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)


def prompt_shares(prefilling: list[Sequence], budget: int) -> list[tuple[Sequence, int]]:
    """Split one step's ``budget`` of prompt tokens: a fair floor for each, then shortest remaining first.

    Every prefilling sequence first gets ``floor = max(1, budget // (2 * k))`` tokens (k sequences,
    ``budget >= k``); the rest goes to the sequences with the fewest prompt tokens left, in that
    order (ties by arrival). So a short prompt that arrives while long ones are read gets at least
    half the budget and is read in ``ceil(length / (budget / 2))`` steps, usually its first, whatever
    is in flight; and no prompt starves: one of ``P`` tokens is read within ``ceil(P / floor)``
    steps even while short prompts keep arriving. Shortest-first minimises the mean wait for a
    first token; the floor bounds the longest one's. In ``benchmarks/policies.py`` (30-token chats
    every 0.5 s, two 4,000-token prompts, 0.5 s steps) short-chat TTFT p50 is 0.33 s, against 0.60 s
    for equal shares and 7.0 s for arrival order; the first long prompt also ends sooner than with
    equal shares (13.2 s against 17.8 s).
    """
    if not prefilling or budget <= 0:
        return []
    k = len(prefilling)
    floor = budget // (2 * k) or (1 if budget >= k else 0)
    shares = {id(seq): min(_left(seq), floor) for seq in prefilling}
    spare = budget - sum(shares.values())
    for seq in sorted(prefilling, key=lambda s: (_left(s), s.number)):
        if spare <= 0:
            break
        extra = min(_left(seq) - shares[id(seq)], spare)
        shares[id(seq)] += extra
        spare -= extra
    return [(seq, shares[id(seq)]) for seq in prefilling if shares[id(seq)] > 0]


def _left(seq: Sequence) -> int:
    return len(seq.prompt_ids) - seq.num_computed
