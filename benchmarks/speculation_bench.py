"""Speculative decoding, one stream: off, n-gram drafts, and Predicted Outputs, side by side (issue 28).

Run it alone on the machine (nothing else busy), from the repository root:

    .venv/bin/python benchmarks/speculation_bench.py [--llama-server PATH]

For each model (SmolLM2-135M-Instruct and Gemma 3 270M), one streamserve with ``--speculative off``
and one with ``--speculative ngram`` (and llama-server without and with ``--spec-type ngram-simple`` if a
path is given), each with one lane. Every request is greedy, streamed, and measured as output tokens/s after the
first token (the usage's ``completion_tokens`` less one, over the time from the first to the last
chunk). The shipped models do not copy text they are asked to repeat, so the prediction rows use the
model's own answer:

(a) ``prediction`` = the model's own greedy answer to a code prompt (about ``--max-tokens`` tokens),
    measured first without it;
(b) the same prediction with one line in the middle changed;
(c) draftless n-gram drafts on answers that repeat their own structure (JSON records, a table, a list);
(d) free prose, n-gram drafts against none;
(e) ``--streams`` concurrent prose streams (16), n-gram against off (aggregate tokens/s), each run on a
    server of its own, the two modes alternating, ``--repeat`` runs each (median).

Every speculative answer is checked against the answer without speculation (text equal; ``same``
column). It prints one markdown table per model and writes ``docs/speculation-bench.json``.
``--quick`` (one model, 2 tiny requests per row, no concurrency) is a smoke run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from servers import Setup, command, free_port, spawned

from streamserve.bench.prometheus import parse_metrics
from streamserve.models import resolve_model

CODE = ("Write a Python module with a class Inventory that stores items with a name, a quantity and a price, "
        "with methods to add, remove, look up and total the items, each with a docstring.")
STRUCTURED = (
    "Write a JSON array of 8 records for employees, each with the keys id, name, department and salary.",
    "Make a markdown table of the planets of the solar system with columns: name, order from the sun, moons.",
    "Write 12 lines of the form 'Step N: check the item N and mark it done.' for N from 1 to 12.",
)
PROSE = ("Tell a short story about a lighthouse keeper who finds a message in a bottle.",
         "Explain why the sky is blue to a curious child, in a few paragraphs.")
TIMEOUT_S = 900.0
ROOT = Path(__file__).resolve().parent.parent


def stream_chat(base_url: str, model: str, prompt: str, max_tokens: int, **extra: Any) -> dict[str, Any]:
    """One greedy streamed chat request: its text, completion tokens, tokens/s after the first, usage details."""
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0.0, "stream": True, "stream_options": {"include_usage": True}, **extra}
    text, usage, first, last = "", None, None, None
    with httpx.stream("POST", base_url + "/chat/completions", json=body, timeout=TIMEOUT_S) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices", ()):
                content = choice["delta"].get("content")
                if content:
                    now = time.perf_counter()
                    first = first or now
                    last = now
                    text += content
    assert usage is not None, "no usage chunk"
    tokens = usage["completion_tokens"]
    span = (last - first) if first is not None and last is not None else 0.0
    return {"text": text, "tokens": tokens, "tps": (tokens - 1) / span if span > 0 else 0.0,
            "details": usage.get("completion_tokens_details")}


def concurrent(base_url: str, model: str, prompts: list[str], max_tokens: int) -> float:
    """Aggregate output tokens/s of ``prompts`` sent at once, each streamed."""
    results: list[dict[str, Any]] = []

    def one(prompt: str) -> None:
        results.append(stream_chat(base_url, model, prompt, max_tokens))

    start = time.perf_counter()
    threads = [threading.Thread(target=one, args=(p,)) for p in prompts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(r["tokens"] for r in results) / (time.perf_counter() - start)


def drafts(base_url: str) -> tuple[float, float] | None:
    """The server's draft tokens verified and accepted so far (``/metrics``); None from llama-server."""
    try:
        response = httpx.get(base_url.removesuffix("/v1") + "/metrics", timeout=10)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    metrics = parse_metrics(response.text)
    return (metrics.get("streamserve:spec_draft_tokens_total", 0.0),
            metrics.get("streamserve:spec_accepted_tokens_total", 0.0))


def change_a_line(text: str) -> str:
    """The text with its middle line replaced."""
    lines = text.split("\n")
    lines[len(lines) // 2] = "    # this line was changed by the benchmark"
    return "\n".join(lines)


def bench_model(name: str, args: argparse.Namespace, log_dir: Path) -> list[dict[str, Any]]:
    """Every row for one model; servers run one at a time."""
    _, path = resolve_model(name)
    setup = Setup(path, 1 if not args.streams else args.streams, args.max_model_len, args.threads)
    rows: list[dict[str, Any]] = []
    repeat = 1 if args.quick else args.repeat
    structured = STRUCTURED[:1] if args.quick else STRUCTURED
    prose = PROSE[:1] if args.quick else PROSE

    def serve(kind: str, extra: list[str]) -> Any:
        port = free_port()
        cmd = command(kind, setup, port, args.llama_server, extra if kind == "streamserve" else ())
        if kind == "llama-server":
            cmd += extra
        return spawned(f"{name}-{kind}-{'-'.join(extra) or 'plain'}", cmd, port, log_dir)

    def row(label: str, base_url: str, prompt: str, reference: str | None, against: str | None = None,
            **extra: Any) -> dict[str, Any]:
        before = drafts(base_url)
        runs = [stream_chat(base_url, "m", prompt, args.max_tokens, **extra) for _ in range(repeat)]
        after = drafts(base_url)
        median = sorted(runs, key=lambda r: r["tps"])[len(runs) // 2]
        result = {"model": name, "row": label, "tokens": median["tokens"], "tps": round(median["tps"], 1),
                  "same": None if reference is None else all(r["text"] == reference for r in runs),
                  "details": median["details"]}
        if before and after and after[0] > before[0]:  # the server's own counts, over every run of the row
            result["drafted"], result["accepted"] = after[0] - before[0], after[1] - before[1]
        if against is not None:
            result["ratio"] = round(median["tps"] / next(r["tps"] for r in rows if r["row"] == against), 2)
        rows.append(result)
        print(json.dumps(result), flush=True)
        return median

    answers: dict[str, str] = {}
    with serve("streamserve", ["--speculative", "off", "--served-model-name", "m"]) as off:
        stream_chat(off.base_url, "m", "Hi", 4)  # warm-up, discarded
        own = row("off: code", off.base_url, CODE, None)
        answers[CODE] = own["text"]
        row("(a) prediction = own answer", off.base_url, CODE, own["text"], "off: code",
            prediction={"type": "content", "content": own["text"]})
        row("(b) prediction, one line changed", off.base_url, CODE, own["text"], "off: code",
            prediction={"type": "content", "content": change_a_line(own["text"])})
        for prompt in (*structured, *prose):
            answers[prompt] = row(f"off: {prompt[:32]}", off.base_url, prompt, None)["text"]
    with serve("streamserve", ["--speculative", "ngram", "--served-model-name", "m"]) as ngram:
        stream_chat(ngram.base_url, "m", "Hi", 4)
        for prompt in structured:
            row(f"(c) ngram: {prompt[:32]}", ngram.base_url, prompt, answers[prompt], f"off: {prompt[:32]}")
        for prompt in prose:
            row(f"(d) ngram: {prompt[:32]}", ngram.base_url, prompt, answers[prompt], f"off: {prompt[:32]}")
    if args.streams and not args.quick:
        # Each run on a server of its own, the modes alternating: servers of one checkout differ by up to
        # 15% at 16 streams (where the arrivals land in the first steps), more than the row measures.
        prompts = [PROSE[i % len(PROSE)] for i in range(args.streams)]
        runs: dict[str, list[float]] = {"off": [], "ngram": []}
        for _ in range(repeat):
            for mode, tps_runs in runs.items():
                with serve("streamserve", ["--speculative", mode, "--served-model-name", "m"]) as server:
                    stream_chat(server.base_url, "m", "Hi", 4)
                    tps_runs.append(round(concurrent(server.base_url, "m", prompts, args.max_tokens), 1))
        off_tps, on_tps = statistics.median(runs["off"]), statistics.median(runs["ngram"])
        rows.append({"model": name, "row": f"(e) off, {args.streams} streams", "tps": off_tps, "runs": runs["off"]})
        rows.append({"model": name, "row": f"(e) ngram, {args.streams} streams", "tps": on_tps,
                     "runs": runs["ngram"], "ratio": round(on_tps / off_tps, 2)})
    if args.llama_server:
        with serve("llama-server", []) as llama:
            stream_chat(llama.base_url, "m", "Hi", 4)
            for prompt in structured:
                row(f"llama-server: {prompt[:32]}", llama.base_url, prompt, None)
        with serve("llama-server", ["--spec-type", "ngram-simple"]) as llama:
            stream_chat(llama.base_url, "m", "Hi", 4)
            for prompt in structured:
                row(f"(c) llama-server ngram-simple: {prompt[:32]}", llama.base_url, prompt, None,
                    f"llama-server: {prompt[:32]}")
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table."""
    lines = ["| model | row | tokens | tokens/s | vs without | same text | accepted / rejected | "
             "drafted, accepted (all runs) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        details = r.get("details") or {}
        counts = (f"{details['accepted_prediction_tokens']} / {details['rejected_prediction_tokens']}"
                  if details else "")
        same = "" if r.get("same") is None else ("yes" if r["same"] else "NO")
        ratio = f"{r['ratio']:.2f}x" if "ratio" in r else ""
        drafted = f"{r['drafted']:.0f}, {r['accepted']:.0f}" if "drafted" in r else ""
        lines.append(f"| {r['model']} | {r['row']} | {r.get('tokens', '')} | {r['tps']} | {ratio} | {same} "
                     f"| {counts} | {drafted} |")
    return "\n".join(lines)


def main() -> None:
    """Parse the arguments, run every model's rows, print the tables and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["smollm2-135m-instruct", "gemma-3-270m"])
    parser.add_argument("--max-tokens", type=int, default=300)
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the median counts")
    parser.add_argument("--streams", type=int, default=16, help="concurrent streams for row (e); 0 skips it")
    parser.add_argument("--llama-server", help="llama-server binary, run with --spec-type ngram-simple")
    parser.add_argument("--quick", action="store_true", help="a smoke run: one model, tiny requests")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "speculation-bench.json")
    args = parser.parse_args()
    if args.quick:
        args.models, args.max_tokens, args.streams = args.models[:1], 16, 0
    log_dir = Path(tempfile.mkdtemp(prefix="speculation-bench-"))
    rows = [r for name in args.models for r in bench_model(name, args, log_dir)]
    print(table(rows))
    if not args.quick:
        args.output.write_text(json.dumps(rows, indent=1) + "\n")
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
