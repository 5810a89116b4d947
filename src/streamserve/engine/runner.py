"""ModelRunner: turns one step's chunks into one llama_decode and one sampled token per sampling sequence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamserve.engine.scheduler import Chunk
from streamserve.engine.sequence import Sequence
from streamserve.llama import Batch, Context


@dataclass(frozen=True, slots=True)
class Sampled:
    """The token drawn for one sequence this step, with its logprobs when the sequence asked for them."""

    seq: Sequence
    token_id: int
    logprob: float | None = None
    top_logprobs: tuple[tuple[int, float], ...] | None = None


class ModelRunner:
    """Fills the batch, decodes it, and samples each sequence whose chunk wants logits."""

    def __init__(self, context: Context, max_batch_tokens: int) -> None:
        self.context = context
        self.batch = Batch(max_batch_tokens)

    def run(self, chunks: list[Chunk]) -> list[Sampled]:
        """Decode all chunks in one batch; raise ``DecodeError`` if llama.cpp fails it."""
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
        results = []
        for seq, row in to_sample:
            assert seq.sampler is not None
            if seq.params.logprobs is None:
                results.append(Sampled(seq, seq.sampler.sample(self.context, row)))
                continue
            logprobs = self._log_softmax(row)
            token = seq.sampler.sample(self.context, row)
            results.append(Sampled(seq, token, float(logprobs[token]), _top(logprobs, seq.params.logprobs)))
        return results

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
