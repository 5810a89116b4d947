"""Startup: seconds from ``streamserve serve`` to a healthy ``/health``, this checkout against an older commit.

Each of ``--rounds`` rounds starts a server of each checkout in turn (the order alternating), with default
flags and its own empty data directory, and times it until ``/health`` answers 200 (the model loaded, the
kernel and speculation probes done). Caches under ``~/.cache/streamserve`` are left as they are: run it
once first to time the first start on a machine. Run it alone, from the repository root:

    python benchmarks/startup_compare.py --baseline HEAD~1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from engine_bench import machine
from engine_compare import worktree
from servers import free_port, spawned


def time_to_healthy(src: Path | None, model: str) -> float:
    """Start a server of the checkout whose sources are ``src`` (None: this one); seconds until it is healthy."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamserve", "serve", "--model", model, "--port", str(port),
           "--log-level", "warning", "--data-dir", tempfile.mkdtemp(prefix="streamserve-startup-")]
    env = {**os.environ, "PYTHONPATH": str(src)} if src is not None else None
    started = time.monotonic()
    with spawned("startup", cmd, port, Path("benchmarks/out/startup"), env=env, poll=0.02):
        return time.monotonic() - started


def main() -> None:
    """Alternate the two checkouts' servers; print and write each one's times and medians."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="HEAD~1", help="the older commit to compare with")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/out/startup_compare.json")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"streamserve": [], "baseline": []}
    with worktree(args.baseline) as tree:
        for r in range(args.rounds):
            for system in ("streamserve", "baseline") if r % 2 == 0 else ("baseline", "streamserve"):
                times[system].append(time_to_healthy(tree / "src" if system == "baseline" else None, args.model))
    medians = {s: statistics.median(v) for s, v in times.items()}
    print(f"{args.model}: seconds to a healthy /health, median of {args.rounds}: this checkout "
          f"{medians['streamserve']:.2f} ({', '.join(f'{t:.2f}' for t in times['streamserve'])}), {args.baseline} "
          f"{medians['baseline']:.2f} ({', '.join(f'{t:.2f}' for t in times['baseline'])})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), "command": " ".join(sys.argv), "baseline": args.baseline,
                               "model": args.model, "seconds": times, "medians": medians}, indent=2))


if __name__ == "__main__":
    main()
