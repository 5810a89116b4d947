"""The probe child: load a model with extra buffer types and decode multi-token, multi-sequence batches.

Run as ``python -m streamserve.llama.probe MODEL N_BATCH N_THREADS``; exit 0 means the kernels work.
The context is small (two lanes): the kernels at risk are the weights' matrix products, whose shapes
depend on the batch, not on the KV cache size. ``STREAMSERVE_PROBE_FAULT=crash`` (tests only) makes the
child die with SIGSEGV after loading, as a faulty kernel does.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from streamserve.llama.batch import Batch
from streamserve.llama.context import Context
from streamserve.llama.model import Model

FAULT_ENV = "STREAMSERVE_PROBE_FAULT"
_LANES = 2
_PROMPT_TOKENS = 32


def probe(path: Path, n_batch: int, n_threads: int) -> None:
    """Read a prompt into two lanes in one batch, then decode two steps of one token per lane."""
    per_lane = max(2, min(_PROMPT_TOKENS, n_batch // _LANES - 1))
    with (
        Model(path, extra_bufts=True) as model,
        Context(
            model, n_ctx_seq=per_lane + 8, n_seq_max=_LANES, n_batch=max(n_batch, _LANES), n_threads=n_threads
        ) as context,
    ):
        if os.environ.get(FAULT_ENV) == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        ids = model.tokenize(
            "The quick brown fox jumps over the lazy dog. " * 16, add_special=False, parse_special=False
        )
        batch = Batch(max(n_batch, _LANES))
        try:
            for lane in range(_LANES):
                for pos in range(per_lane):
                    batch.add(ids[pos % len(ids)], pos, lane, pos == per_lane - 1)
            context.decode(batch)
            for step in range(2):
                batch.clear()
                for lane in range(_LANES):
                    batch.add(ids[step], per_lane + step, lane, True)
                context.decode(batch)
        finally:
            batch.close()


def main() -> int:
    """Entry point of the probe child."""
    path, n_batch, n_threads = sys.argv[1:]
    probe(Path(path), int(n_batch), int(n_threads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
