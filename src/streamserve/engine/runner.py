"""ModelRunner: turns one step's chunks into llama_decode calls and one drawn token per sampling sequence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamserve.engine.constraint import ConstraintError, Constraints
from streamserve.engine.lanes import Logits, tail_rows
from streamserve.engine.scheduler import Chunk
from streamserve.engine.sequence import Sequence
from streamserve.llama import Batch, Context


@dataclass(frozen=True, slots=True)
class Sampled:
    """The token drawn for one sequence this step, with its logprobs when the sequence asked for them.

    For a constrained sequence, ``complete`` says its grammar is finished with this token, and ``error``
    (with ``token_id`` -1) that its matcher failed: that sequence must fail, the others go on.
    ``prompt_logits`` is set when this step read the last token of the prompt: its logits, as decoded,
    which the prompt cache keeps so that the same prompt again draws from them without a read.
    """

    seq: Sequence
    token_id: int
    logprob: float | None = None
    top_logprobs: tuple[tuple[int, float], ...] | None = None
    complete: bool = False
    error: str | None = None
    prompt_logits: Logits | None = None


@dataclass(frozen=True, slots=True)
class _Draw:
    """One sequence to draw for: from batch row ``row`` of the last decode, or (row None) from ``logits``."""

    seq: Sequence
    row: int | None
    logits: Logits | None  # the row's logits as decoded (a prompt's last token), or the cached prompt's


class ModelRunner:
    """Decodes a step's chunks, and samples each sequence whose chunk wants logits.

    A step takes up to three llama_decode calls, so that every row is computed in a batch shape that
    does not depend on the cache or on other traffic (docs/determinism.md, ``benchmarks/determinism_probe.py``).
    llama.cpp cuts a call over several lanes into ubatches holding as many rows of each lane, and a
    row's logits change with how many rows of its lane its ubatch holds (flash attention takes another
    path from 64 rows on): a prompt chunk decoded beside a decode token would be cut into 1 + the rest.
    So the calls are: the decode tokens; the grid chunks (every lane's rows a multiple of the grid, at
    least 64: always the large path); and the prompt tails, each padded with junk rows to whole groups
    of ``ROW_GROUP`` rows (``tail_rows``; below 64 rows a lane: always the small path, and each row in a
    whole group of llama.cpp's repacked matmuls wherever the tail sits), the junk removed from the lane
    right after. A tail padded as far as a whole grid chunk is decoded as one, with the grid chunks.
    With ``deterministic``, every chunk gets its own call, and nothing another sequence does can change
    a sequence's rows. A sequence whose whole prompt was cached decodes nothing: it draws from the
    prompt's saved logits.

    A sequence with a constraint has its logits row masked in place before its own sampler chain
    draws, and the drawn token advances the constraint; logprobs are the model's, taken before the mask.
    """

    def __init__(self, context: Context, max_batch_tokens: int, constraints: Constraints, *, grid: int,
                 deterministic: bool = False) -> None:
        self.context = context
        self.batch = Batch(max_batch_tokens)
        self.constraints = constraints
        self.grid = grid
        self.deterministic = deterministic

    def run(self, chunks: list[Chunk]) -> list[Sampled]:
        """Decode the chunks in the calls ``calls`` groups them into; raise ``DecodeError`` if llama.cpp fails one."""
        results: list[Sampled] = []
        for call in self.calls(chunks):
            results.extend(self._run_call(call))
        cached = [_Draw(c.seq, None, c.seq.first_logits) for c in chunks if c.kind == "cached"]
        return results + self._draw(cached) if cached else results

    def calls(self, chunks: list[Chunk]) -> list[list[Chunk]]:
        """The llama_decode calls of one step, in order (a sequence's grid chunks before its tail)."""
        decoded = [c for c in chunks if c.kind != "cached"]
        if self.deterministic:
            return [[chunk] for chunk in decoded]
        large = [c for c in decoded if c.kind == "grid" or (c.kind == "tail" and self._rows(c) == self.grid)]
        small = [c for c in decoded if c.kind == "tail" and self._rows(c) < self.grid]
        calls = [[c for c in decoded if c.kind == "decode"], large, small]
        return [call for call in calls if call]

    def _rows(self, chunk: Chunk) -> int:
        """Batch rows of a prompt tail: its tokens and the junk that pads them, within the lane's context."""
        return min(tail_rows(len(chunk.tokens), self.grid), self.context.n_ctx_seq - chunk.start)

    def _run_call(self, chunks: list[Chunk]) -> list[Sampled]:
        batch = self.batch
        batch.clear()
        rows: list[tuple[Chunk, int]] = []
        padded: list[tuple[int, int]] = []
        # Rows in lane order: llama.cpp splits a batch whose lanes are out of order into slower pieces.
        for chunk in sorted(chunks, key=lambda c: c.seq.lane):
            last = len(chunk.tokens) - 1
            lane = chunk.seq.lane
            for i, token in enumerate(chunk.tokens):
                row = batch.add(token, chunk.start + i, lane, chunk.sample and i == last)
            if chunk.sample:
                rows.append((chunk, row))
            end = chunk.start + len(chunk.tokens)
            if chunk.kind == "tail" and chunk.start + self._rows(chunk) > end:
                for pos in range(end, chunk.start + self._rows(chunk)):
                    batch.add(chunk.tokens[-1], pos, lane, False)
                padded.append((lane, end))
        self.context.decode(batch)
        for lane, end in padded:
            self.context.remove(lane, end, -1)
        return self._draw([_Draw(c.seq, row, self.context.logits(row) if c.kind != "decode" else None)
                           for c, row in rows])

    def _draw(self, draws: list[_Draw]) -> list[Sampled]:
        """Mask the constrained sequences' logits (all in one llguidance call), then draw for each."""
        # The model's own logprobs, before any mask changes the logits.
        raw = {d.seq: self._log_softmax(d) for d in draws if d.seq.params.logprobs is not None}
        masked = {d.seq: self._masked(d) for d in draws if d.seq.constraint is not None}
        errors = self._mask([(d.seq, logits) for d in draws if (logits := masked.get(d.seq)) is not None])
        results = []
        for d in draws:
            error = errors.get(d.seq)
            results.append(Sampled(d.seq, -1, error=error) if error else self._sample(d, masked.get(d.seq),
                                                                                      raw.get(d.seq)))
        return results

    def _masked(self, draw: _Draw) -> Logits:
        """The logits a constraint masks in place: the batch row itself, or a copy of the cached prompt's."""
        if draw.row is None:
            assert draw.logits is not None
            return draw.logits.copy()
        return self.context.logits_view(draw.row)

    def _mask(self, constrained: list[tuple[Sequence, Logits]]) -> dict[Sequence, str]:
        """Mask the constrained sequences' logits in place; the sequences whose matcher failed, with why."""
        if not constrained:
            return {}
        rows = []
        for seq, logits in constrained:
            assert seq.constraint is not None
            rows.append((seq.constraint, logits))
        errors = self.constraints.apply(rows)
        return {seq: error for (seq, _), error in zip(constrained, errors, strict=True) if error}

    def _sample(self, draw: _Draw, masked: Logits | None, logprobs: Logits | None) -> Sampled:
        """Draw from the row or the cached logits (masked already if constrained); advance the constraint."""
        seq = draw.seq
        assert seq.sampler is not None
        if draw.row is None:
            assert draw.logits is not None
            token = seq.sampler.sample_logits(masked if masked is not None else draw.logits)
        else:
            token = seq.sampler.sample(self.context, draw.row)
        prompt_logits = draw.logits if draw.row is not None else None
        complete = False
        if seq.constraint is not None:
            try:
                seq.constraint.consume(token)
            except ConstraintError as exc:
                return Sampled(seq, -1, error=str(exc))
            complete = seq.constraint.complete
        if logprobs is None or seq.params.logprobs is None:
            return Sampled(seq, token, complete=complete, prompt_logits=prompt_logits)
        return Sampled(seq, token, float(logprobs[token]), _top(logprobs, seq.params.logprobs), complete,
                       prompt_logits=prompt_logits)

    def _log_softmax(self, draw: _Draw) -> Logits:
        logits = draw.logits if draw.logits is not None else self.context.logits(draw.row)  # type: ignore[arg-type]
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
