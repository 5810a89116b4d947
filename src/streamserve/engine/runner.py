"""ModelRunner: the KV lanes' memory and each sequence's sampler; one step's work into llama_decode calls and draws."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import numpy as np

from streamserve.engine.constraint import ConstraintError, Masks
from streamserve.engine.lanes import Logits, tail_rows
from streamserve.engine.sequence import Sequence
from streamserve.engine.work import Sampled, Work
from streamserve.llama import Batch, Context, DecodeError, Sampler


@dataclass(frozen=True, slots=True)
class _Draw:
    """One sequence to draw for: from batch row ``row`` of the last decode, or (row None) from ``logits``."""

    seq: Sequence
    row: int | None
    logits: Logits | None  # the row's logits as decoded (a prompt's last token), or the cached prompt's


class ModelRunner:
    """Decodes a step's work, and draws a token for each sequence whose work wants logits.

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
    With ``deterministic``, every work item gets its own call, and nothing another sequence does can
    change a sequence's rows. A sequence whose whole prompt was cached decodes nothing: it draws from
    the prompt's saved logits.

    A sequence with a constraint has its logits row masked in place before its own sampler chain
    draws, and the drawn token advances the constraint; logprobs are the model's, taken before the mask.
    The runner also owns the lanes' KV memory operations (``prepare``, ``release``) and the samplers.
    """

    def __init__(self, context: Context, max_num_batched_tokens: int, masks: Masks, *, grid: int,
                 deterministic: bool = False) -> None:
        self.context = context
        self.batch = Batch(max_num_batched_tokens)
        self.masks = masks
        self.grid = grid
        self.deterministic = deterministic

    def prepare(self, seqs: list[Sequence]) -> None:
        """Get admitted sequences' lanes ready: copy a reused prefix in, cut what the lane held beyond it, and
        build each one's sampler chain."""
        for seq in seqs:
            if seq.copy_from is not None:
                self.context.copy(seq.copy_from, seq.lane)
            if not self.context.remove(seq.lane, seq.num_cached, -1):  # a sliding-window cache cannot cut
                self.context.remove(seq.lane)
                seq.num_cached = seq.num_computed = 0
                seq.first_logits = None
            p = seq.params
            seed = p.seed if p.seed is not None else random.getrandbits(32)
            seq.sampler = Sampler(self.context.model.n_vocab, temperature=p.temperature, top_p=p.top_p, top_k=p.top_k,
                                  min_p=p.min_p, seed=seed, presence_penalty=p.presence_penalty,
                                  frequency_penalty=p.frequency_penalty, repetition_penalty=p.repetition_penalty,
                                  logit_bias=p.logit_bias)

    def release(self, seq: Sequence, *, keep_kv: bool) -> None:
        """Free a finished sequence's sampler; clear its lane's memory unless it stays as prompt cache."""
        if seq.sampler is not None:
            seq.sampler.close()
            seq.sampler = None
        seq.constraint = None
        if not keep_kv and seq.lane >= 0:
            self.context.remove(seq.lane)

    def run(self, works: list[Work]) -> list[Sampled]:
        """Decode the work in the calls ``calls`` groups it into; raise ``DecodeError`` if llama.cpp fails one."""
        results: list[Sampled] = []
        for call in self.calls(works):
            results.extend(self._run_call(call))
        cached = [_Draw(c.seq, None, c.seq.first_logits) for c in works if c.kind == "cached"]
        return results + self._draw(cached) if cached else results

    def calls(self, works: list[Work]) -> list[list[Work]]:
        """The llama_decode calls of one step, in order (a sequence's grid chunks before its tail)."""
        decoded = [c for c in works if c.kind != "cached"]
        if self.deterministic:
            return [[work] for work in decoded]
        large = [c for c in decoded if c.kind == "grid" or (c.kind == "tail" and self._rows(c) == self.grid)]
        small = [c for c in decoded if c.kind == "tail" and self._rows(c) < self.grid]
        calls = [[c for c in decoded if c.kind == "decode"], large, small]
        calls += [[c] for c in decoded if c.kind == "verify"]
        return [call for call in calls if call]

    def _rows(self, work: Work) -> int:
        """Batch rows of a prompt tail: its tokens and the junk that pads them, within the lane's context."""
        return min(tail_rows(len(work.tokens), self.grid), self.context.n_ctx_seq - work.start)

    def _run_call(self, works: list[Work]) -> list[Sampled]:
        if works[0].kind == "verify":
            return self._verify(works[0])
        batch = self.batch
        batch.clear()
        rows: list[tuple[Work, int]] = []
        padded: list[tuple[int, int]] = []
        # Rows in lane order: llama.cpp splits a batch whose lanes are out of order into slower pieces.
        for work in sorted(works, key=lambda c: c.seq.lane):
            last = len(work.tokens) - 1
            lane = work.seq.lane
            for i, token in enumerate(work.tokens):
                row = batch.add(token, work.start + i, lane, work.sample and i == last)
            if work.sample:
                rows.append((work, row))
            end = work.start + len(work.tokens)
            if work.kind == "tail" and work.start + self._rows(work) > end:
                for pos in range(end, work.start + self._rows(work)):
                    batch.add(work.tokens[-1], pos, lane, False)
                padded.append((lane, end))
        self.context.decode(batch)
        for lane, end in padded:
            self.context.remove(lane, end, -1)
        return self._draw([_Draw(c.seq, row, self.context.logits(row) if c.kind != "decode" else None)
                           for c, row in rows])

    def _verify(self, work: Work) -> list[Sampled]:
        """Decode a sequence's last token and its draft in one call, every row with logits, and draw row by row.

        Row ``i`` is drawn from as decoding one token at a time would draw it: with the sequence's own
        sampler chain (its penalties and random state advanced by each token before), its grammar mask
        computed after the tokens before, its logprobs from the row. While the drawn token equals draft
        token ``i``, it is accepted and row ``i + 1`` (decoded with it as input) is drawn from next; the
        first disagreement, or the row after the whole draft, gives the step's last token. Since the
        draft is fixed before the draw, this is exact for sampled output too. The lane then keeps the
        positions up to the one before the last emitted token, as after one-token steps.
        """
        batch = self.batch
        batch.clear()
        seq, draft = work.seq, work.draft
        rows = [batch.add(token, work.start + i, seq.lane, True) for i, token in enumerate(work.tokens)]
        self.context.decode(batch)
        results: list[Sampled] = []
        for i, row in enumerate(rows):
            (drawn,) = self._draw([_Draw(seq, row, None)])
            agrees = i < len(draft) and drawn.error is None and drawn.token_id == draft[i]
            if agrees:
                drawn = replace(drawn, accepted=True)
            results.append(drawn)
            if not agrees or drawn.complete:
                break
        if not self.context.remove(seq.lane, work.start + len(results), -1):
            raise DecodeError(-1)  # the rejected positions would stay in the lane: fail this step's sequences
        return results

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
        errors = self.masks.apply(rows)
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
