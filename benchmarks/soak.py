"""The soak benchmark: thousands of randomised streams against a real server, every one checked.

Run it alone on the machine, from the repository root. On 2 cores the 5,000 default requests take
about 1 h 40 min, within the default ``--duration`` (7,200 s, after which no phase starts):

    .venv/bin/python benchmarks/soak.py

It starts ``streamserve serve`` on 127.0.0.1 itself (or use ``--base-url`` and ``--pid`` for a
running server), sends ``--requests`` streamed requests over chat and legacy completions at
concurrency 1 to 32 with random ``n``, ``stop``, ``max_tokens``, ``logprobs`` and
``include_usage``, 10% of the clients hanging up at a random point and 2% reading slowly; checks
every stream against OpenAI's wire rules and its token accounting; replays a sample alone at
temperature 0; checks the engine is idle with every lane free; and samples the server's RSS.
It writes the JSON record (``--out``), the plot (``--plot``) and the soak section of
``docs/reliability.md`` (``--docs``). ``--from-json`` rewrites the plot and the section from a
record without running anything. The logic lives in ``soaklib`` beside this script (``run``, ``plan``,
``wire``, ``accounting``, ...), sending through ``streamserve.bench``'s client; this script only starts
the server and writes the files. It needs the ``bench`` extra (``pip install -e '.[bench]'``) for its plot.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from servers import Spawned, free_port, spawned
from soaklib.doc import render_section, write_section
from soaklib.plan import plan_requests
from soaklib.plot import plot_soak
from soaklib.run import SoakConfig, run_soak, scrape
from soaklib.summary import summarize

from streamserve.bench.client import BenchClient
from streamserve.bench.record import RequestOptions

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000, help="streamed requests to send")
    parser.add_argument("--seed", type=int, default=0, help="seed of the request mix")
    parser.add_argument("--replay", type=int, default=100, help="greedy requests replayed alone and compared")
    parser.add_argument("--duration", type=float, default=7200.0, help="start no new request after this many s")
    parser.add_argument("--timeout", type=float, default=300.0, help="per-request timeout (s)")
    parser.add_argument("--replay-duration", type=float, default=900.0,
                        help="start no new replay this many s after the replays begin")
    parser.add_argument("--model", default="smollm2-135m-instruct", help="model of the server this script starts")
    parser.add_argument("--max-num-seqs", type=int, default=8, help="--max-num-seqs of the server this script starts")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra argument for the server this script starts (repeatable)")
    parser.add_argument("--base-url", help="soak a running server instead (its OpenAI base URL, ending in /v1)")
    parser.add_argument("--pid", type=int, help="with --base-url: the server's pid, to sample its RSS")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "soak.json", help="the JSON record")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "images" / "soak.png", help="the PNG plot")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "reliability.md",
                        help="the page whose soak section is (re)written")
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp/streamserve-soak"), help="server log directory")
    parser.add_argument("--from-json", type=Path, help="only rewrite the plot and the docs section from this record")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Run the soak (or rewrite its outputs) and write the record, the plot and the docs section."""
    args = parse_args(argv)
    if args.from_json:
        record = json.loads(args.from_json.read_text())
        write_outputs(record, args, json_path=args.from_json)
        return 0
    command = " ".join([".venv/bin/python benchmarks/soak.py", *map(shlex.quote, argv)])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # stop the server on the way out
    with server(args) as (base_url, pid, info):
        record = asyncio.run(soak(args, base_url, pid, command, info))
    info.update(_log_summary(info))
    record["checks"]["server_healthy_at_end"] = info.get("health_at_end") == 200
    if info["started_by_soak"]:
        record["checks"]["no_server_tracebacks"] = info.get("log_tracebacks") == 0
        record["checks"]["clean_exit_on_sigterm"] = info.get("exit_code") == 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    write_outputs(record, args, json_path=args.out)
    print(json.dumps({"checks": record["checks"], "out": str(args.out)}, indent=1))
    return 0 if all(ok is not False for ok in record["checks"].values()) else 1


@contextlib.contextmanager
def server(args: argparse.Namespace) -> Iterator[tuple[str, int | None, dict[str, Any]]]:
    """The server to soak: the one at ``--base-url``, or a fresh ``streamserve serve`` on 127.0.0.1."""
    if args.base_url:
        if not args.base_url.startswith(("http://127.0.0.1", "http://localhost")):
            raise SystemExit("soak: --base-url must be on 127.0.0.1")
        yield args.base_url, args.pid, {"base_url": args.base_url, "pid": args.pid, "started_by_soak": False}
        return
    port = free_port()
    serve = ["--model", args.model, "--host", "127.0.0.1", "--port", str(port),
             "--max-num-seqs", str(args.max_num_seqs), "--max-queue", str(32 * 4), "--log-level", "info",
             *args.server_arg]
    cmd = [sys.executable, "-m", "streamserve", "serve", *serve]
    info: dict[str, Any] = {"started_by_soak": True, "args": ["streamserve", "serve", *serve]}
    running: Spawned
    with spawned("soak-server", cmd, port, args.log_dir, stop_signal=signal.SIGTERM) as running:
        info.update(base_url=running.base_url, pid=running.process.pid, log=str(running.log_path))
        try:
            yield running.base_url, running.process.pid, info
        finally:
            info["alive_at_end"] = running.process.poll() is None
    info.update(exit_code=running.exit_code, stop_seconds=running.stop_seconds)


async def soak(args: argparse.Namespace, base_url: str, pid: int | None, command: str,
               info: dict[str, Any]) -> dict[str, Any]:
    """Plan and run the soak; return its JSON record."""
    root = base_url.removesuffix("/v1")
    async with httpx.AsyncClient(timeout=10) as http:
        metrics = await scrape(http, root + "/metrics")
    lanes = int(metrics["streamserve:lanes"]) if metrics and "streamserve:lanes" in metrics else None
    config = SoakConfig(requests=args.requests, seed=args.seed, replay=args.replay, duration=args.duration,
                        timeout=args.timeout, replay_duration=args.replay_duration, lanes=lanes)
    options = RequestOptions(timeout=args.timeout)
    async with BenchClient(base_url, options=options, max_connections=max(config.levels) + 4) as client:
        client.model = (await client.list_models())[0]
        plan = plan_requests(config.requests, model=client.model, seed=config.seed,
                             hangup_rate=config.hangup_rate, slow_rate=config.slow_rate)
        run = await run_soak(client, plan, config, metrics_url=root + "/metrics", pid=pid, log=_log)
    async with httpx.AsyncClient(timeout=10) as http:
        try:
            info["health_at_end"] = (await http.get(root + "/health")).status_code
        except httpx.HTTPError as exc:
            info["health_at_end"] = f"{type(exc).__name__}"
    info["model"] = client.model
    return summarize(run, command=command, server=info)


def write_outputs(record: dict[str, Any], args: argparse.Namespace, *, json_path: Path) -> None:
    """The plot and the docs section of ``record``."""
    plot_soak(record, args.plot)
    page = args.docs.resolve()
    section = render_section(record, json_path=_relative(json_path, ROOT),
                             plot_path=_relative(args.plot, page.parent))
    write_section(page, section)


def _log_summary(info: dict[str, Any]) -> dict[str, Any]:
    if "log" not in info:
        return {}
    text = Path(info["log"]).read_text(errors="replace")
    return {"log_error_lines": sum(" ERROR " in line for line in text.splitlines()),
            "log_tracebacks": text.count("Traceback (most recent call last)")}


def _relative(path: Path, base: Path) -> str:
    return os.path.relpath(path.resolve(), base.resolve())


def _log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
