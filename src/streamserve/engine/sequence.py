"""Sequence: all the state of one generation on the engine thread."""

from __future__ import annotations

import asyncio
import enum
import itertools
import time
from dataclasses import dataclass, field

from streamserve.engine.constraint import Constraint
from streamserve.engine.drafts import NgramDrafter, PredictionDrafter
from streamserve.engine.lanes import Logits
from streamserve.engine.sampling import SamplingParams
from streamserve.llama import Sampler

_numbers = itertools.count(1)


class SequenceStatus(enum.Enum):
    """Where a sequence is in its life::

        WAITING --admit--> RUNNING --EOG / length--> FINISHED
           |                  |
           +-----abort--------+--------------------> ABORTED

    A RUNNING sequence first prefills its prompt in chunks (``is_prefilling``), then decodes one
    token per step. FINISHED and ABORTED sequences hold no lane.
    """

    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"
    ABORTED = "aborted"


@dataclass(eq=False)
class Sequence:
    """One generation: its prompt and output ids, KV lane, sampler and grammar constraint.

    The client makes it (prompt, parameters, a compiled constraint) and hands it to the engine core;
    from then on only the engine thread reads or changes it. The client knows it by ``number``.
    """

    prompt_ids: list[int]
    params: SamplingParams
    loop: asyncio.AbstractEventLoop | None = None  # where the client wants its outputs; never changed
    constraint: Constraint | None = None
    number: int = field(default_factory=lambda: next(_numbers))
    status: SequenceStatus = SequenceStatus.WAITING
    lane: int = -1
    copy_from: int | None = None
    num_computed: int = 0
    num_cached: int = 0
    first_logits: Logits | None = None  # the whole prompt was cached: its last token's logits, to draw from
    prompt_credit: int = 0  # prompt tokens the scheduler granted that are not prefilled yet (whole units only)
    prefill_waits: int = 0  # steps in a row a unit its credit covers was left out of a full step
    output_ids: list[int] = field(default_factory=list)
    sampler: Sampler | None = None
    drafter: PredictionDrafter | NgramDrafter | None = None  # made at its first draft (engine.speculation)
    draft_evidence: tuple[float, float] = (0.0, 0.0)  # draft tokens accepted and rejected, recent ones weighing more
    shadow_guess: int | None = None  # this step's proposed but untaken draft's first token (engine.speculation)
    arrival_time: float = field(default_factory=time.monotonic)
    admit_time: float | None = None

    @property
    def is_prefilling(self) -> bool:
        """Whether prompt tokens remain to be decoded into the KV lane."""
        return self.num_computed < len(self.prompt_ids)

    @property
    def is_decoding(self) -> bool:
        """Whether the next step decodes this sequence's last token (its prompt is in, a token drawn)."""
        return bool(self.output_ids) and not self.is_prefilling

    @property
    def num_tokens(self) -> int:
        """Prompt plus output tokens so far."""
        return len(self.prompt_ids) + len(self.output_ids)

    def tokens_in_kv(self) -> list[int]:
        """The tokens the lane holds, in position order."""
        return (self.prompt_ids + self.output_ids)[: self.num_computed]

    @property
    def is_done(self) -> bool:
        """FINISHED or ABORTED."""
        return self.status in (SequenceStatus.FINISHED, SequenceStatus.ABORTED)
