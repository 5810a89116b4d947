"""What verifying a draft costs and how many rows it may take and stay exact, measured once at startup.

A verification decodes a sequence's last token and its draft in one call. Its rows give the logits
one-token steps give only if llama.cpp computes them in the same kernel paths, and on this build they
often do not: repacked matmuls (Gemma 3 270M's Q4_K weights here) compute rows four at a time and the
rest one by one, in another order of sums; and from 256 positions on (512 keys, padded) flash
attention splits a lone one-row decode's keys into one piece per thread, merged after, where a call of
several rows sums each row's keys in one piece (docs/determinism.md). So the probe decodes a few
tokens one at a time, then the same tokens in one call of ``rows`` rows and in one of ``SAFE_ROWS``,
at the start of a lane and again ``LONG_POSITION`` tokens in (or as far as the lane reaches), compares
the logits bit for bit, and reports the largest call that matched at both: what the bit-for-bit
guarantee covers (docs/speculation.md). It also times calls of a few sizes for the draft-length
policy (``CallCost``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamserve.llama import Batch, Context, build_identity

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

LONG_POSITION = 300
"""Where the second exactness check starts: past the 256 positions from which llama.cpp's CPU flash attention
(its keys padded to 512) splits a lone one-row decode's keys between threads (``use_split_kv_path`` in
``ggml-cpu/ops.cpp``)."""


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


_FINDINGS: dict[tuple[str, bool, int, int, int, tuple[int, ...]], VerifyProbe] = {}


def probe_once(context: Context, batch: Batch, tokens: list[int], n_threads: int,
               cache: Path | None = None) -> VerifyProbe:
    """``probe_verification`` once per model file and kernels, thread count, context and tokens in this process:
    an engine started again on the same model (a model loaded again after an eviction, or tests) reuses the
    findings instead of spending a second on the same measurement.

    With ``cache`` (a directory), once per machine too: the findings are kept in a file named by a digest of all
    they depend on (this CPU and llama.cpp build, the model file, its kernels, threads, context and tokens), so
    a restart skips the two or three seconds of measuring. Deleting the directory measures again.
    """
    key = (str(context.model.path), context.model.extra_bufts, n_threads, context.n_batch, context.n_ctx_seq,
           tuple(tokens))
    if key in _FINDINGS:
        return _FINDINGS[key]
    path = None if cache is None else cache / f"verify-{_file_key(context, key)}.json"
    found = None if path is None else _read(path)
    if found is None:
        found = probe_verification(context, batch, tokens)
        if path is not None:
            _write(path, found)
    else:
        _report(found, _far(context, tokens), f" (measured at an earlier start, kept in {path})")
    _FINDINGS[key] = found
    return found


def _file_key(context: Context, key: tuple[object, ...]) -> str:
    """The name of the file that keeps the findings for ``key`` on this machine and build."""
    stat = context.model.path.stat()
    described = repr((build_identity(), stat.st_size, stat.st_mtime_ns, *key))
    return hashlib.blake2b(described.encode(), digest_size=16).hexdigest()


def _read(path: Path) -> VerifyProbe | None:
    """Findings kept by ``_write``; None if there are none or they cannot be read."""
    try:
        kept = json.loads(path.read_text())
        points = tuple((int(rows), float(cost)) for rows, cost in kept["cost"])
        if len(points) < 2 or points[0] != (1, 1.0):
            return None
        return VerifyProbe(int(kept["exact_rows"]), CallCost(points))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write(path: Path, found: VerifyProbe) -> None:
    """Keep ``found`` at ``path``, atomically; a directory that cannot be written only costs the next start a probe."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".verify-", suffix=".json")
        with os.fdopen(fd, "w") as out:
            json.dump({"exact_rows": found.exact_rows, "cost": [list(p) for p in found.cost.points]}, out)
        os.replace(tmp, path)
    except OSError as exc:
        logger.warning("speculation: could not keep the probe's findings in %s: %s", path.parent, exc)


def _far(context: Context, tokens: list[int]) -> int:
    """Where the second exactness check starts: ``LONG_POSITION``, or as far as a lane reaches."""
    return min(LONG_POSITION, context.n_ctx_seq - len(tokens))


def _report(found: VerifyProbe, far: int, kept: str = "") -> None:
    """Log what the probe found, in words."""
    points = found.cost.points
    costs = (f"a call of {', '.join(str(r) for r, _ in points[1:])} rows costs "
             f"{', '.join(f'{c:.1f}' for _, c in points[1:])} one-row decodes")
    if found.exact_rows:
        logger.info("speculation: verifications of up to %d rows give one-token steps' logits here (at positions 0 "
                    "and %d; longer drafts may change output in near-ties, as batching does); %s%s",
                    found.exact_rows, max(far, 0), costs, kept)
    else:
        logger.info("speculation: no verification of several rows gives one-token steps' logits %d positions into "
                    "a lane here, so --speculative auto drafts no n-grams (predictions and --speculative ngram may "
                    "change output in near-ties, as batching does); %s%s", max(far, 0), costs, kept)


def probe_verification(context: Context, batch: Batch, tokens: list[int], lane: int = 0) -> VerifyProbe:
    """Decode ``tokens[1:]`` after ``tokens[0]`` one by one and in calls of several of them; compare and time.

    Uses ``lane`` (empty, left empty) and ``batch`` (room for ``len(tokens) - 1`` rows, within the context's
    ``n_batch``). Needs at least ``SAFE_ROWS + 1`` tokens. Rows are compared by digest, one row's logits
    held at a time (Gemma's are a megabyte a row).
    """
    rows = len(tokens) - 1
    if rows < SAFE_ROWS:
        raise ValueError(f"the probe needs at least {SAFE_ROWS + 1} tokens, got {len(tokens)}")
    far = _far(context, tokens)
    exact_rows = rows
    try:
        for start in (far, 0) if far > 0 else (0,):  # the far check first: where the kernels part, it fails
            if exact_rows:
                exact_rows = _exact_rows(context, batch, tokens, lane, start, (exact_rows, SAFE_ROWS))
        _, one = _one_by_one(context, batch, tokens[: 2 * TIMINGS + 1], lane, 0)
        points = [(1, 1.0)]
        for size in sorted({s for s in (*COST_SIZES, rows) if 1 < s <= rows}):
            elapsed = min(_in_one_call(context, batch, tokens[: size + 1], lane, 0, read=False)[1]
                          for _ in range(TIMINGS))
            low, high = 1 + MIN_ROW_COST * (size - 1), 1 + MAX_ROW_COST * (size - 1)
            points.append((size, max(points[-1][1], min(max(elapsed / one, low), high))))
    finally:
        context.remove(lane)
    found = VerifyProbe(exact_rows, CallCost(tuple(points)))
    _report(found, far)
    return found


def _exact_rows(context: Context, batch: Batch, tokens: list[int], lane: int, start: int,
                sizes: tuple[int, ...]) -> int:
    """The first of ``sizes`` whose call, ``start`` positions into the lane, gives the logits one-token steps give
    there; 0 if none does."""
    _fill(context, tokens, lane, start)
    reference, _ = _one_by_one(context, batch, tokens, lane, start)
    for size in sizes:
        digests, _ = _in_one_call(context, batch, tokens[: size + 1], lane, start)
        if digests == reference[:size]:
            return size
    return 0


def _digest(logits: np.ndarray) -> bytes:
    """A row of logits, bit for bit, in a few bytes."""
    return hashlib.blake2b(np.ascontiguousarray(logits).tobytes(), digest_size=16).digest()


def _fill(context: Context, tokens: list[int], lane: int, length: int) -> None:
    """Make ``lane`` hold ``length`` positions (maybe none) of ``tokens`` repeated, read in calls as large as the
    context takes."""
    context.remove(lane)
    filler = (tokens * (length // len(tokens) + 1))[:length]
    batch = Batch(context.n_batch)
    try:
        for start in range(0, length, context.n_batch):
            batch.clear()
            for pos in range(start, min(start + context.n_batch, length)):
                batch.add(filler[pos], pos, lane, False)
            context.decode(batch)
    finally:
        batch.close()


def _one_by_one(context: Context, batch: Batch, tokens: list[int], lane: int,
                start: int) -> tuple[list[bytes], float]:
    """Each row's logits (digests) decoded one token a call from position ``start`` (the lane holding the positions
    before it), and the fastest such call's time."""
    context.remove(lane, start, -1)
    digests, times = [], []
    for pos, token in enumerate(tokens, start=start):
        batch.clear()
        batch.add(token, pos, lane, True)
        began = time.perf_counter()
        context.decode(batch)
        times.append(time.perf_counter() - began)
        if pos > start:
            digests.append(_digest(context.logits(0)))
    return digests, min(times[1:])


def _in_one_call(context: Context, batch: Batch, tokens: list[int], lane: int, start: int,
                 read: bool = True) -> tuple[list[bytes], float]:
    """Rows 1.. of ``tokens`` decoded in one call after the first alone, from position ``start`` (the lane holding
    the positions before it): their logits' digests (if ``read``) and the call's time."""
    context.remove(lane, start, -1)
    batch.clear()
    batch.add(tokens[0], start, lane, False)
    context.decode(batch)
    batch.clear()
    for pos, token in enumerate(tokens[1:], start=start + 1):
        batch.add(token, pos, lane, True)
    began = time.perf_counter()
    context.decode(batch)
    elapsed = time.perf_counter() - began
    return [_digest(context.logits(row)) for row in range(len(tokens) - 1)] if read else [], elapsed
