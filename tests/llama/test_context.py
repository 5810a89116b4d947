"""Context on the real model: decode, logits per row, per-lane KV memory, and refused batches."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from streamserve.llama import Batch, Context, DecodeError, Model


@pytest.fixture()
def context(smollm2: Model) -> Iterator[Context]:
    with Context(smollm2, n_ctx_seq=256, n_seq_max=2, n_batch=64, n_threads=1) as ctx:
        yield ctx


@pytest.fixture()
def batch() -> Iterator[Batch]:
    b = Batch(64)
    yield b
    b.close()


def _fill(batch: Batch, ids: list[int], lane: int, start: int = 0) -> int:
    batch.clear()
    row = -1
    for i, token in enumerate(ids):
        row = batch.add(token, start + i, lane, i == len(ids) - 1)
    return row


def _ids(model: Model, text: str) -> list[int]:
    return model.tokenize(text, add_special=False, parse_special=False)


def test_decode_gives_logits_for_flagged_rows_only(context: Context, batch: Batch, smollm2: Model) -> None:
    ids = _ids(smollm2, "The capital of France is")
    row = _fill(batch, ids, lane=0)
    context.decode(batch)
    logits = context.logits(row)
    assert logits.shape == (smollm2.n_vocab,) and logits.dtype == np.float32
    assert np.isfinite(logits).all()
    with pytest.raises(ValueError, match="no logits"):
        context.logits(0)


def test_logits_are_a_copy(context: Context, batch: Batch, smollm2: Model) -> None:
    row = _fill(batch, _ids(smollm2, "One, two, three,"), lane=0)
    context.decode(batch)
    first = context.logits(row)
    first[:] = 0
    assert context.logits(row).any()


def test_lanes_are_independent(context: Context, batch: Batch, smollm2: Model) -> None:
    """The same prompt on lane 1, after other text filled lane 0, gives the same logits as alone."""
    prompt = _ids(smollm2, "Once upon a time")
    _fill(batch, _ids(smollm2, "Completely unrelated text here."), lane=0)
    context.decode(batch)
    row = _fill(batch, prompt, lane=1)
    context.decode(batch)
    with_other = context.logits(row)
    context.clear()
    row = _fill(batch, prompt, lane=1)
    context.decode(batch)
    alone = context.logits(row)
    assert int(with_other.argmax()) == int(alone.argmax())
    np.testing.assert_allclose(with_other, alone, atol=1e-2)


def test_remove_then_redecode_continues_a_lane(context: Context, batch: Batch, smollm2: Model) -> None:
    """Cut a lane back to a prefix and decode the rest again: the same logits as reading it in those two chunks.

    (llama.cpp's logits depend on where the last chunk starts, so the reference uses the same split.)
    """
    ids = _ids(smollm2, "The quick brown fox jumps over the lazy")
    _fill(batch, ids[:4], lane=1)
    context.decode(batch)
    row = _fill(batch, ids[4:], lane=1, start=4)
    context.decode(batch)
    two_chunks = context.logits(row)
    _fill(batch, ids, lane=0)
    context.decode(batch)
    assert context.remove(0, 4, -1)
    row = _fill(batch, ids[4:], lane=0, start=4)
    context.decode(batch)  # positions 4.. again: would fail if the cut had not removed them
    np.testing.assert_allclose(context.logits(row), two_chunks, rtol=0, atol=1e-5)


def test_remove_whole_lane_lets_positions_restart(context: Context, batch: Batch, smollm2: Model) -> None:
    ids = _ids(smollm2, "Hello there")
    _fill(batch, ids, lane=1)
    context.decode(batch)
    assert context.remove(1)
    _fill(batch, ids, lane=1)
    context.decode(batch)  # positions 0.. again: would fail if the lane still held them


@pytest.mark.parametrize(
    "row",
    [
        pytest.param((100, 0, 5), id="seq_id beyond n_seq_max"),
        pytest.param((10**6, 0, 0), id="token beyond vocabulary"),
        pytest.param((-3, 0, 0), id="negative token"),
    ],
)
def test_invalid_rows_raise_decode_error_instead_of_aborting(context: Context, batch: Batch,
                                                             row: tuple[int, int, int]) -> None:
    batch.clear()
    batch.add(*row, True)
    with pytest.raises(DecodeError) as info:
        context.decode(batch)
    assert info.value.status < 0


def test_empty_batch_raises_decode_error(context: Context, batch: Batch) -> None:
    batch.clear()
    with pytest.raises(DecodeError):
        context.decode(batch)


def test_close_is_idempotent(smollm2: Model) -> None:
    ctx = Context(smollm2, n_ctx_seq=64, n_seq_max=1, n_batch=8, n_threads=1)
    ctx.close()
    ctx.close()
    assert ctx.ptr is None
