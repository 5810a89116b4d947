"""Hostile clients against a running stream: how long the stream stalls, what the hostile request gets.

Run it alone on the machine, from the repository root (about 3 minutes per server):

    .venv/bin/python benchmarks/hostile_bench.py [--llama-server PATH]

For each server (streamserve, and llama.cpp's llama-server when given), a victim client streams 200
tokens of a legacy completion while, from 0.5 s in, one hostile client does one thing: posts a 10 MB
or a 50 MB body, posts a 4 MB body just under streamserve's limit (a 4,000,000-character prompt),
fires 40 malformed requests (lone surrogates, NaN, nesting 10,000 deep), or opens a stream it never
reads. Per scenario it records the victim's largest gap between chunks and its median gap, the
hostile request's status and time to answer, and the server's RSS growth. Writes
``docs/reliability-hostile.json`` and prints the Markdown table that ``docs/reliability.md`` quotes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from servers import Setup, running

from streamserve.bench.hostile import NO_EOS, open_unread_stream
from streamserve.bench.rss import read_rss
from streamserve.models import resolve_model

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Target:
    """The server under test: its OpenAI base URL and the first model name it lists."""

    base_url: str
    model: str


Hostile = Callable[[Target], dict[str, Any]]


def victim(target: Target, hostile: Hostile) -> dict[str, Any]:
    """Stream 200 tokens; 0.5 s in, run ``hostile`` on another thread; the stream's gaps and the hostile result."""
    result: dict[str, Any] = {}

    def run_hostile() -> None:
        time.sleep(0.5)
        started = time.monotonic()
        result.update(hostile(target))
        result.setdefault("seconds", round(time.monotonic() - started, 2))

    thread = threading.Thread(target=run_hostile)
    thread.start()
    body = {"model": target.model, "prompt": "1, 2, 3,", "max_tokens": 200, "temperature": 0, "stream": True,
            "logit_bias": NO_EOS}  # the victim outlives the hostile request
    times = []
    url = target.base_url + "/completions"
    with httpx.Client(timeout=300) as http, http.stream("POST", url, json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                times.append(time.monotonic())
    thread.join()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return {"chunks": len(times), "max_gap_ms": round(max(gaps) * 1000, 1),
            "median_gap_ms": round(statistics.median(gaps) * 1000, 1), "hostile": result}


def big_body(size: int) -> Hostile:
    """Post a chat request whose single message is ``size`` bytes of text (built now: not on the victim's time)."""
    body = json.dumps({"model": "MODEL", "messages": [{"role": "user", "content": "x" * size}]}).encode()

    def post(target: Target) -> dict[str, Any]:
        return _answer(_post(target, "/chat/completions", body))
    return post


def under_the_limit(target: Target) -> dict[str, Any]:
    """A 4,000,000-character prompt in a body just under streamserve's 4 MiB limit."""
    return _answer(_post(target, "/chat/completions", UNDER_THE_LIMIT))


UNDER_THE_LIMIT = json.dumps({"model": "MODEL", "messages": [{"role": "user",
                                                              "content": "Tell me everything. " * 200_000}]}).encode()


MALFORMED = [
    b'{"model": "MODEL", "prompt": "\\ud800", "max_tokens": 4}',
    b'{"model": "MODEL", "prompt": "hi", "temperature": NaN}',
    b'{"model": "MODEL", "prompt": "hi", "max_tokens": 1e999}',
    b'{"model": "MODEL", "messages": [{"role": "user"}]}',
    b'{"model": "MODEL", "prompt": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    b'{"model": "MODEL", "prompt": "\xff\xfe", "max_tokens": 4}',
    b'{"model": "MODEL", "prompt": "hi", "logit_bias": {' + b",".join(b'"%d": 1' % i for i in range(5000)) + b"}}",
    b'{"model": "MODEL", "prompt": "hi", "stop": ["a", "b", "c", "d", "e"]}',
]


def malformed(target: Target) -> dict[str, Any]:
    """Forty malformed requests in a row; the statuses they got."""
    statuses: dict[str, int] = {}
    for i in range(40):
        path = "/chat/completions" if b"messages" in MALFORMED[i % len(MALFORMED)] else "/completions"
        status = str(_post(target, path, MALFORMED[i % len(MALFORMED)]).status_code)
        statuses[status] = statuses.get(status, 0) + 1
    return {"statuses": statuses}


def never_reads(target: Target) -> dict[str, Any]:
    """Open a fat stream (20 alternatives per token) on a socket with a tiny buffer and never read it."""
    sock = open_unread_stream(target.base_url, target.model, max_tokens=3000)
    time.sleep(20)  # the victim's 200 tokens end meanwhile; the socket stays open, unread
    sock.close()
    return {"status": "never read (closed after 20 s)"}


SCENARIOS: dict[str, Hostile | None] = {
    "alone": None,
    "10 MB body": big_body(10_000_000),
    "50 MB body": big_body(50_000_000),
    "4 MB body, 4M-character prompt": under_the_limit,
    "40 malformed requests": malformed,
    "a stream never read": never_reads,
}


def _post(target: Target, path: str, content: bytes) -> httpx.Response:
    content = content.replace(b'"MODEL"', json.dumps(target.model).encode(), 1)
    try:
        return httpx.post(target.base_url + path, content=content, headers={"content-type": "application/json"},
                          timeout=300)
    except httpx.HTTPError as exc:  # a server that hangs up on a big body
        return httpx.Response(599, text=type(exc).__name__)


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        code = response.json().get("error", {}).get("code")
    except (ValueError, AttributeError):
        code = response.text[:40]
    return {"status": response.status_code, "code": code}


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (NaN if it cannot be read)."""
    rss = read_rss(pid)
    return float("nan") if rss is None else rss / 2**20


def run_server(kind: str, setup: Setup, llama_server: str | None, log_dir: Path) -> dict[str, Any]:
    """Every scenario against one fresh server of ``kind``."""
    rows = {}
    with running(kind, setup, llama_server, log_dir) as base_url:
        target = Target(base_url, httpx.get(base_url + "/models", timeout=10).json()["data"][0]["id"])
        pid = _pid_listening(base_url)
        victim(target, lambda _: {})  # warm-up
        for name, hostile in SCENARIOS.items():
            before = rss_mb(pid)
            row = victim(target, hostile or (lambda _: {}))
            row["rss_growth_mb"] = round(rss_mb(pid) - before, 1)
            rows[name] = row
            print(kind, name, row, flush=True)
            time.sleep(1)
        alive = httpx.get(base_url + "/models", timeout=10).status_code == 200
    return {"scenarios": rows, "alive_at_end": alive}


def _pid_listening(base_url: str) -> int:
    port = int(base_url.rsplit(":", 1)[1].split("/")[0])
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":
            inode = fields[9]
            for fd in Path("/proc").glob("[0-9]*/fd/*"):
                try:
                    if fd.readlink().name == f"socket:[{inode}]":
                        return int(fd.parts[2])
                except OSError:
                    continue
    raise RuntimeError(f"no process listens on port {port}")


def table(results: dict[str, dict[str, Any]]) -> str:
    """The Markdown table of all servers' scenarios."""
    lines = ["| server | hostile client | victim's largest gap (ms) | median gap (ms) | hostile request got "
             "| in (s) | RSS growth (MB) |", "|---|---|---|---|---|---|---|"]
    for kind, result in results.items():
        for name, row in result["scenarios"].items():
            hostile = row["hostile"]
            got = (f"{hostile['status']} {hostile.get('code') or ''}".strip() if "code" in hostile
                   else json.dumps(hostile["statuses"]) if "statuses" in hostile else hostile.get("status", "–"))
            seconds = hostile.get("seconds", "–") if name != "alone" else "–"
            lines.append(f"| {kind} | {name} | {row['max_gap_ms']} | {row['median_gap_ms']} | {got} | {seconds} "
                         f"| {row['rss_growth_mb']} |")
    return "\n".join(lines)


def main() -> None:
    """Run the scenarios, write the JSON record and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llama-server", help="a llama-server binary to run the same scenarios against")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability-hostile.json")
    args = parser.parse_args()
    _, path = resolve_model("smollm2-135m-instruct")
    setup = Setup(path, max_num_seqs=8, max_model_len=4096, threads=2)
    kinds = ["streamserve"] + (["llama-server"] if args.llama_server else [])
    with tempfile.TemporaryDirectory() as logs:
        results = {kind: run_server(kind, setup, args.llama_server, Path(logs)) for kind in kinds}
    record = {"command": "benchmarks/hostile_bench.py" + (" --llama-server PATH" if args.llama_server else ""),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "results": results}
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
