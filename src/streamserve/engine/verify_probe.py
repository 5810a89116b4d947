"""What verifying a draft costs and how many rows it may take and stay exact, measured once at startup.

A verification decodes a sequence's last token and its draft in one call. Its rows give the logits
one-token steps give only if llama.cpp computes them in the same kernel paths: on this build that
holds below 64 rows of a lane for flash attention, but llama.cpp's repacked matmuls (Gemma 3 270M's
Q4_K weights here) compute rows four at a time and the rest one by one, in another order of sums
(docs/determinism.md). So the probe decodes a few tokens one at a time, then the same tokens in one
call of ``rows`` rows and in one of ``SAFE_ROWS``, compares the logits bit for bit, and reports the
largest call that matched: what the bit-for-bit guarantee covers (docs/speculation.md). It also times
the calls for the draft-length policy (``Speculator.row_cost``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from streamserve.llama import Batch, Context

logger = logging.getLogger("streamserve.engine")

SAFE_ROWS = 3
"""Rows that stay on the one-row matmul path even where repacked kernels group rows by 4."""

MIN_ROW_COST, MAX_ROW_COST = 0.05, 0.5
"""Bounds on the measured row cost: a machine busy at startup overstates it, and would turn drafting off."""


@dataclass(frozen=True, slots=True)
class VerifyProbe:
    """The probe's findings: the most rows a verification call may hold and give one-token steps' logits
    (0: none found that do), and one more row's cost relative to a one-row decode."""

    exact_rows: int
    row_cost: float


def probe_verification(context: Context, batch: Batch, tokens: list[int], lane: int = 0) -> VerifyProbe:
    """Decode ``tokens[1:]`` after ``tokens[0]`` one by one and in calls of all of them and of ``SAFE_ROWS``.

    Uses ``lane`` (empty, left empty) and ``batch`` (room for ``len(tokens) - 1`` rows, within the context's
    ``n_batch``). Needs at least ``SAFE_ROWS + 1`` tokens.
    """
    rows = len(tokens) - 1
    if rows < SAFE_ROWS:
        raise ValueError(f"the probe needs at least {SAFE_ROWS + 1} tokens, got {len(tokens)}")
    try:
        reference, one = _one_by_one(context, batch, tokens, lane)
        exact_rows = 0
        cost = MAX_ROW_COST
        for size in (rows, SAFE_ROWS):
            logits, elapsed = _in_one_call(context, batch, tokens[: size + 1], lane)
            if size == rows:  # timed again: the first call of a shape also builds its graph
                elapsed = min(elapsed, _in_one_call(context, batch, tokens[: size + 1], lane, read=False)[1])
                cost = (elapsed - one) / (max(1, rows - 1) * one)
            if all(np.array_equal(a, b) for a, b in zip(logits, reference, strict=False)):
                exact_rows = size
                break
    finally:
        context.remove(lane)
    row_cost = min(max(cost, MIN_ROW_COST), MAX_ROW_COST)
    logger.info("speculation: verifications of up to %d rows give one-token steps' logits here (longer drafts "
                "may change output in near-ties, as batching does); one more row costs %.2f of a one-row decode",
                exact_rows, cost)
    return VerifyProbe(exact_rows, row_cost)


def _one_by_one(context: Context, batch: Batch, tokens: list[int], lane: int) -> tuple[list[np.ndarray], float]:
    """Each row's logits decoded one token a call, and the fastest such call's time."""
    context.remove(lane)
    logits, times = [], []
    for pos, token in enumerate(tokens):
        batch.clear()
        batch.add(token, pos, lane, True)
        start = time.perf_counter()
        context.decode(batch)
        times.append(time.perf_counter() - start)
        if pos:
            logits.append(context.logits(0))
    return logits, min(times[1:])


def _in_one_call(context: Context, batch: Batch, tokens: list[int], lane: int,
                 read: bool = True) -> tuple[list[np.ndarray], float]:
    """Rows 1.. of ``tokens`` decoded in one call after the first alone: their logits (if ``read``: a
    vocabulary of floats per row, 18 MB for 17 rows of Gemma's) and the call's time."""
    context.remove(lane)
    batch.clear()
    batch.add(tokens[0], 0, lane, False)
    context.decode(batch)
    batch.clear()
    for pos, token in enumerate(tokens[1:], start=1):
        batch.add(token, pos, lane, True)
    start = time.perf_counter()
    context.decode(batch)
    elapsed = time.perf_counter() - start
    return [context.logits(row) for row in range(len(tokens) - 1)] if read else [], elapsed
