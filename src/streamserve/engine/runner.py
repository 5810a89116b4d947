"""ModelRunner: turns one step's chunks into one llama_decode and one sampled token per sampling sequence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamserve.engine.constraint import ConstraintError, Constraints
from streamserve.engine.scheduler import Chunk
from streamserve.engine.sequence import Sequence
from streamserve.llama import Batch, Context


@dataclass(frozen=True, slots=True)
class Sampled:
    """The token drawn for one sequence this step, with its logprobs when the sequence asked for them.

    For a constrained sequence, ``complete`` says its grammar is finished with this token, and ``error``
    (with ``token_id`` -1) that its matcher failed: that sequence must fail, the others go on.
    """

    seq: Sequence
    token_id: int
    logprob: float | None = None
    top_logprobs: tuple[tuple[int, float], ...] | None = None
    complete: bool = False
    error: str | None = None


class ModelRunner:
    """Decodes a step's chunks, and samples each sequence whose chunk wants logits.

    A step takes several llama_decode calls, so that every row is computed in a batch shape that does
    not depend on the cache or on other traffic (docs/determinism.md, ``benchmarks/determinism_probe.py``).
    llama.cpp cuts a call over several lanes into ubatches holding as many rows of each lane, and a
    row's logits change with its ubatch's row count (below 64 rows, or from 64): a prompt chunk decoded
    beside a decode token would be cut into 1 + the rest. So decode tokens go in one call; all grid
    chunks in one call (every ubatch then holds multiples of the grid, at least 64 rows); and each
    prompt tail in a call of its own, so its shape is its length alone. With ``deterministic``, every
    chunk gets its own call, and nothing another sequence does can change a sequence's rows.

    A sequence with a constraint has its logits row masked in place before its own sampler chain
    draws, and the drawn token advances the constraint; logprobs are the model's, taken before the mask.
    """

    def __init__(self, context: Context, max_batch_tokens: int, constraints: Constraints, *,
                 deterministic: bool = False) -> None:
        self.context = context
        self.batch = Batch(max_batch_tokens)
        self.constraints = constraints
        self.deterministic = deterministic

    def run(self, chunks: list[Chunk]) -> list[Sampled]:
        """Decode the chunks in the calls ``calls`` groups them into; raise ``DecodeError`` if llama.cpp fails one."""
        results: list[Sampled] = []
        for call in self.calls(chunks):
            results.extend(self._run_call(call))
        return results

    def calls(self, chunks: list[Chunk]) -> list[list[Chunk]]:
        """The llama_decode calls of one step, in order (a sequence's grid chunks before its tail)."""
        if self.deterministic:
            return [[chunk] for chunk in chunks]
        calls = [[c for c in chunks if c.kind == kind] for kind in ("decode", "grid")]
        calls += [[c] for c in chunks if c.kind == "tail"]
        return [call for call in calls if call]

    def _run_call(self, chunks: list[Chunk]) -> list[Sampled]:
        batch = self.batch
        batch.clear()
        to_sample: list[tuple[Sequence, int]] = []
        # Rows in lane order: llama.cpp splits a batch whose lanes are out of order into slower pieces.
        for chunk in sorted(chunks, key=lambda c: c.seq.lane):
            last = len(chunk.tokens) - 1
            lane = chunk.seq.lane
            for i, token in enumerate(chunk.tokens):
                row = batch.add(token, chunk.start + i, lane, chunk.sample and i == last)
            if chunk.sample:
                to_sample.append((chunk.seq, row))
        self.context.decode(batch)
        constrained = [(seq, row) for seq, row in to_sample if seq.constraint is not None]
        # The model's own logprobs, before the mask changes the row.
        raw = {seq: self._log_softmax(row) for seq, row in constrained if seq.params.logprobs is not None}
        errors = self._mask(constrained) if constrained else {}
        results = []
        for seq, row in to_sample:
            error = errors.get(seq)
            results.append(Sampled(seq, -1, error=error) if error else self._sample(seq, row, raw.get(seq)))
        return results

    def _mask(self, constrained: list[tuple[Sequence, int]]) -> dict[Sequence, str]:
        """Mask the rows of the constrained sequences in place; the sequences whose matcher failed, with why."""
        rows = []
        for seq, row in constrained:
            assert seq.constraint is not None
            rows.append((seq.constraint, self.context.logits_view(row)))
        errors = self.constraints.apply(rows)
        return {seq: error for (seq, _), error in zip(constrained, errors, strict=True) if error}

    def _sample(self, seq: Sequence, row: int, logprobs: np.ndarray | None = None) -> Sampled:
        """Draw from the row (already masked for a constrained sequence) and advance its constraint."""
        assert seq.sampler is not None
        if seq.params.logprobs is not None and logprobs is None:
            logprobs = self._log_softmax(row)
        token = seq.sampler.sample(self.context, row)
        complete = False
        if seq.constraint is not None:
            try:
                seq.constraint.consume(token)
            except ConstraintError as exc:
                return Sampled(seq, -1, error=str(exc))
            complete = seq.constraint.complete
        if logprobs is None or seq.params.logprobs is None:
            return Sampled(seq, token, complete=complete)
        return Sampled(seq, token, float(logprobs[token]), _top(logprobs, seq.params.logprobs), complete)

    def _log_softmax(self, row: int) -> np.ndarray:
        logits = self.context.logits(row)
        shifted = logits - logits.max()
        return shifted - np.log(np.exp(shifted).sum())  # type: ignore[no-any-return]

    def close(self) -> None:
        """Free the batch."""
        self.batch.close()


def _top(logprobs: np.ndarray, k: int) -> tuple[tuple[int, float], ...]:
    if k <= 0:
        return ()
    ids = np.argpartition(logprobs, -k)[-k:]
    ids = ids[np.argsort(logprobs[ids])[::-1]]
    return tuple((int(i), float(logprobs[i])) for i in ids)
