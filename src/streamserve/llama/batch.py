"""Batch: a llama_batch of token rows, each with its position, sequence lane and logits flag."""

from __future__ import annotations

import llama_cpp.llama_cpp as lc


class Batch:
    """A reusable ``llama_batch`` with room for ``capacity`` token rows, one sequence id per row.

    Rows are checked here, in Python, because a bad row aborts the whole process inside llama.cpp.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.raw = lc.llama_batch_init(capacity, 0, 1)
        self.n_tokens = 0
        self._token = self.raw.token
        self._pos = self.raw.pos
        self._n_seq_id = self.raw.n_seq_id
        self._seq_id = self.raw.seq_id
        self._logits = self.raw.logits

    def clear(self) -> None:
        """Forget all rows."""
        self.n_tokens = 0
        self.raw.n_tokens = 0

    def add(self, token: int, pos: int, seq_id: int, logits: bool) -> int:
        """Append one row and return its index (the row to read logits from if ``logits``)."""
        row = self.n_tokens
        if row >= self.capacity:
            raise ValueError(f"batch is full ({self.capacity} rows)")
        self._token[row] = token
        self._pos[row] = pos
        self._n_seq_id[row] = 1
        self._seq_id[row][0] = seq_id
        self._logits[row] = logits
        self.n_tokens = row + 1
        self.raw.n_tokens = self.n_tokens
        return row

    def close(self) -> None:
        """Free the batch's buffers."""
        if self.capacity:
            lc.llama_batch_free(self.raw)
            self.capacity = 0
