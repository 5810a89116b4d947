"""What a prompt token costs read in chunks of 64, 128 and 256 tokens, at several KV positions, alone.

One lane of the engine's context settings (8 lanes of 4,096 tokens, 512-token batches, the kernels the
startup probe allows); each cell is the median of 3 reads of one chunk after ``p`` tokens already in
the lane. Answers whether reading long prompts in larger grid units would read them faster.

    python benchmarks/chunk_cost.py [--model smollm2-135m-instruct] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from streamserve.llama import Batch, Context, ProbeSettings, load_model
from streamserve.models import resolve_model

POSITIONS = (0, 1024, 2048, 3072)
CHUNKS = (64, 128, 256, 512)


def main() -> None:
    """Print one markdown row per position: ms per prompt token for each chunk size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    _, path = resolve_model(args.model)
    model = load_model(path, "auto", ProbeSettings(n_batch=512, n_threads=args.threads))
    ctx = Context(model, n_ctx_seq=4096, n_seq_max=8, n_batch=512, n_threads=args.threads)
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text() * 4
    ids = model.tokenize(text, add_special=True, parse_special=False)[: POSITIONS[-1] + CHUNKS[-1]]
    batch = Batch(512)

    def decode(start: int, end: int) -> float:
        batch.clear()
        for pos in range(start, end):
            batch.add(ids[pos], pos, 0, pos == end - 1)
        began = time.perf_counter()
        ctx.decode(batch)
        return time.perf_counter() - began

    print("| position | " + " | ".join(f"{c}-token chunks (ms a token)" for c in CHUNKS) + " |")
    print("|---|" + "---|" * len(CHUNKS))
    for position in POSITIONS:
        ctx.clear()
        for start in range(0, position, 256):
            decode(start, min(position, start + 256))
        cells = []
        for chunk in CHUNKS:
            times = []
            for _ in range(3):
                ctx.remove(0, position, -1)
                times.append(decode(position, position + chunk))
            cells.append(f"{1000 * statistics.median(times) / chunk:.2f}")
        print(f"| {position} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
