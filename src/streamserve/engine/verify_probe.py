"""What verifying a draft costs and how many rows it may take and stay exact, measured once at startup.

A verification decodes a sequence's last token and its draft in one call. Its rows give the logits
one-token steps give only if llama.cpp computes them in the same kernel paths: on this build that
holds below 64 rows of a lane for flash attention, but llama.cpp's repacked matmuls (Gemma 3 270M's
Q4_K weights here) compute rows four at a time and the rest one by one, in another order of sums
(docs/determinism.md). So the probe decodes a few tokens one at a time, then the same tokens in one
call of ``rows`` rows and in one of ``SAFE_ROWS``, compares the logits bit for bit, and reports the
largest call that matched: what the bit-for-bit guarantee covers (docs/speculation.md). It also times
calls of a few sizes for the draft-length policy (``CallCost``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

import numpy as np

from streamserve.llama import Batch, Context

logger = logging.getLogger("streamserve.engine")

SAFE_ROWS = 3
"""Rows that stay on the one-row matmul path even where repacked kernels group rows by 4."""

MIN_ROW_COST, MAX_ROW_COST = 0.05, 1.0
"""Bounds on what each row past the first adds to a call, relative to a one-row call: below a twentieth is
a timing glitch, and above a whole one-row decode is a machine busy at startup (rows of one call never
cost more than calls of one row), which would turn drafting off."""


COST_SIZES = (SAFE_ROWS, 9, 17)
"""Call sizes timed besides the longest verification: the cost of a call is far from linear in its rows on
a CPU (on 2 EPYC cores, 3 rows cost 2.2 one-row calls, 17 rows 7.6 to 9.3, 33 rows 10 to 18), so drafts
are sized from points."""


TIMINGS = 2
"""Calls of each size timed; the fastest counts (the first call of a shape also builds its graph)."""


@dataclass(frozen=True, slots=True)
class CallCost:
    """What a decode call of ``rows`` rows costs relative to a one-row call: measured points, ``(1, 1.0)``
    first, joined by straight lines and continued past the last one with the last segment's slope."""

    points: tuple[tuple[int, float], ...]

    @classmethod
    def linear(cls, row_cost: float) -> CallCost:
        """Each row past the first adds ``row_cost``."""
        return cls(((1, 1.0), (2, 1.0 + row_cost)))

    def __call__(self, rows: int) -> float:
        """The relative cost of a call of ``rows`` rows."""
        (r0, c0), (r1, c1) = self.points[0], self.points[1]
        for (a, ca), (b, cb) in zip(self.points, self.points[1:], strict=False):
            (r0, c0), (r1, c1) = (a, ca), (b, cb)
            if rows <= b:
                break
        return c0 + (c1 - c0) * (rows - r0) / (r1 - r0)


@dataclass(frozen=True, slots=True)
class VerifyProbe:
    """The probe's findings: the most rows a verification call may hold and give one-token steps' logits
    (0: none found that do), and what calls of several rows cost relative to a one-row call."""

    exact_rows: int
    cost: CallCost


_FINDINGS: dict[tuple[str, bool, int, int, tuple[int, ...]], VerifyProbe] = {}


def probe_once(context: Context, batch: Batch, tokens: list[int], n_threads: int) -> VerifyProbe:
    """``probe_verification`` once per model file and kernels, thread count and tokens in this process: an engine
    started again on the same model (a model loaded again after an eviction, or tests) reuses the findings
    instead of spending a second on the same measurement."""
    key = (str(context.model.path), context.model.extra_bufts, n_threads, context.n_batch, tuple(tokens))
    if key not in _FINDINGS:
        _FINDINGS[key] = probe_verification(context, batch, tokens)
    return _FINDINGS[key]


def probe_verification(context: Context, batch: Batch, tokens: list[int], lane: int = 0) -> VerifyProbe:
    """Decode ``tokens[1:]`` after ``tokens[0]`` one by one and in calls of several of them; compare and time.

    Uses ``lane`` (empty, left empty) and ``batch`` (room for ``len(tokens) - 1`` rows, within the context's
    ``n_batch``). Needs at least ``SAFE_ROWS + 1`` tokens. Rows are compared by digest, one row's logits
    held at a time (Gemma's are a megabyte a row).
    """
    rows = len(tokens) - 1
    if rows < SAFE_ROWS:
        raise ValueError(f"the probe needs at least {SAFE_ROWS + 1} tokens, got {len(tokens)}")
    try:
        reference, one = _one_by_one(context, batch, tokens, lane)
        exact_rows = 0
        for size in (rows, SAFE_ROWS):
            digests, _ = _in_one_call(context, batch, tokens[: size + 1], lane)
            if digests == reference[:size]:
                exact_rows = size
                break
        points = [(1, 1.0)]
        for size in sorted({s for s in (*COST_SIZES, rows) if 1 < s <= rows}):
            elapsed = min(_in_one_call(context, batch, tokens[: size + 1], lane, read=False)[1]
                          for _ in range(TIMINGS))
            low, high = 1 + MIN_ROW_COST * (size - 1), 1 + MAX_ROW_COST * (size - 1)
            points.append((size, max(points[-1][1], min(max(elapsed / one, low), high))))
    finally:
        context.remove(lane)
    cost = CallCost(tuple(points))
    logger.info("speculation: verifications of up to %d rows give one-token steps' logits here (longer drafts "
                "may change output in near-ties, as batching does); a call of %s rows costs %s one-row decodes",
                exact_rows, ", ".join(str(r) for r, _ in points[1:]), ", ".join(f"{c:.1f}" for _, c in points[1:]))
    return VerifyProbe(exact_rows, cost)


def _digest(logits: np.ndarray) -> bytes:
    """A row of logits, bit for bit, in a few bytes."""
    return hashlib.blake2b(np.ascontiguousarray(logits).tobytes(), digest_size=16).digest()


def _one_by_one(context: Context, batch: Batch, tokens: list[int], lane: int) -> tuple[list[bytes], float]:
    """Each row's logits (digests) decoded one token a call, and the fastest such call's time."""
    context.remove(lane)
    digests, times = [], []
    for pos, token in enumerate(tokens):
        batch.clear()
        batch.add(token, pos, lane, True)
        start = time.perf_counter()
        context.decode(batch)
        times.append(time.perf_counter() - start)
        if pos:
            digests.append(_digest(context.logits(0)))
    return digests, min(times[1:])


def _in_one_call(context: Context, batch: Batch, tokens: list[int], lane: int,
                 read: bool = True) -> tuple[list[bytes], float]:
    """Rows 1.. of ``tokens`` decoded in one call after the first alone: their logits' digests (if ``read``)
    and the call's time."""
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
    return [_digest(context.logits(row)) for row in range(len(tokens) - 1)] if read else [], elapsed
