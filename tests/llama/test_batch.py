"""Batch: rows with position, lane and logits flag; a full batch raises instead of overflowing."""

from __future__ import annotations

import pytest

from streamserve.llama import Batch


def test_add_returns_row_indexes_and_fills_the_raw_batch() -> None:
    batch = Batch(4)
    try:
        assert [batch.add(10 + i, i, 1, i == 2) for i in range(3)] == [0, 1, 2]
        raw = batch.raw
        assert raw.n_tokens == batch.n_tokens == 3
        assert [raw.token[i] for i in range(3)] == [10, 11, 12]
        assert [raw.pos[i] for i in range(3)] == [0, 1, 2]
        assert [raw.n_seq_id[i] for i in range(3)] == [1, 1, 1]
        assert [raw.seq_id[i][0] for i in range(3)] == [1, 1, 1]
        assert [bool(raw.logits[i]) for i in range(3)] == [False, False, True]
    finally:
        batch.close()


def test_full_batch_raises() -> None:
    batch = Batch(2)
    try:
        batch.add(1, 0, 0, False)
        batch.add(2, 1, 0, True)
        with pytest.raises(ValueError, match="full"):
            batch.add(3, 2, 0, True)
        assert batch.n_tokens == 2
    finally:
        batch.close()


def test_clear_starts_over_at_row_zero() -> None:
    batch = Batch(2)
    try:
        batch.add(1, 0, 0, False)
        batch.add(2, 1, 0, True)
        batch.clear()
        assert batch.n_tokens == batch.raw.n_tokens == 0
        assert batch.add(3, 0, 1, True) == 0
    finally:
        batch.close()


def test_close_is_idempotent() -> None:
    batch = Batch(3)
    batch.close()
    batch.close()
    assert batch.capacity == 0
