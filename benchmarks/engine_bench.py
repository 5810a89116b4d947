"""The engine benchmark: streamserve against llama.cpp's llama-server, llama-cpp-python's server and a bare loop.

Run it alone on the machine (nothing else busy), from the repository root:

    python benchmarks/engine_bench.py --llama-server ~/.cache/streamserve-bench/llama-server

It writes ``docs/performance.json`` (every figure), ``docs/performance.md`` (tables) and
``docs/performance.png`` (tokens/s against concurrency). Every system gets the same GGUF, 16 lanes
of the same per-sequence context and the same thread count; each of N clients streams 2 completions
of 128 tokens in turn from the prompt "1, 2, 3, 4, 5, 6, 7, 8," at temperature 0, with the
end-of-generation tokens biased away so that every request really produces 128 tokens.

The mixed-load scenario (``scenarios.mixed_load``: short chats and multi-turn conversations arriving
while long prompts are read) runs streamserve and llama-server on 8 lanes of 4,096 tokens; alone:

    python benchmarks/engine_bench.py --mixed-only --models smollm2-135m-instruct
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import bare_loop
import llama_cpp.llama_cpp as lc
import report
import scenarios
from servers import Setup, running

from streamserve.models import resolve_model

SYSTEMS = ("streamserve", "llama-server", "llama-cpp-python")
MIXED_SYSTEMS = ("streamserve", "llama-server")
MIXED_LANES, MIXED_CTX = 8, 4096  # room for the mixed scenario's ~3,500-token prompts


def eog_bias(path: Path) -> dict[str, float]:
    """logit_bias that keeps every end-of-generation token from being sampled."""
    bare_loop._silence()
    params = lc.llama_model_default_params()
    params.vocab_only = True
    model = lc.llama_model_load_from_file(str(path).encode(), params)
    vocab = lc.llama_model_get_vocab(model)
    ids = [t for t in range(lc.llama_vocab_n_tokens(vocab)) if lc.llama_vocab_is_eog(vocab, t)]
    lc.llama_model_free(model)
    return {str(t): -100.0 for t in ids}


def bench_model(name: str, args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    """Every system on one model: the sweep and latency scenarios, then the mixed load (ours and llama-server)."""
    _, path = resolve_model(name)
    result: dict[str, Any] = {"model": name, "path": str(path), "systems": {}}
    bias = eog_bias(path)
    if not args.mixed_only:
        bench_sweep(name, args, path, out_dir, result, bias)
    mixed = Setup(path, max_num_seqs=MIXED_LANES, max_model_len=MIXED_CTX, threads=args.threads)
    result["mixed_load"] = {}
    for kind in (k for k in args.systems.split(",") if k in MIXED_SYSTEMS and not args.no_mixed):
        print(f"[{name}] {kind}: mixed load", flush=True)
        with running(kind, mixed, args.llama_server, out_dir / "logs" / name / "mixed") as base_url:
            result["mixed_load"][kind] = asyncio.run(scenarios.mixed_load(base_url, bias, shorts=args.shorts))
    return result


def bench_sweep(name: str, args: argparse.Namespace, path: Path, out_dir: Path, result: dict[str, Any],
                bias: dict[str, float]) -> None:
    """The bare loop, then every system's concurrency sweep and (ours and llama-server's) latency scenarios."""
    setup = Setup(path, max_num_seqs=16, max_model_len=args.max_model_len, threads=args.threads)
    levels = [int(x) for x in args.levels.split(",")]
    print(f"[{name}] bare loop", flush=True)
    bare = bare_loop.run(str(path), levels, args.tokens, args.max_model_len, args.threads)
    result["bare_loop"] = {str(size): tps for size, tps in bare.items()}
    for kind in args.systems.split(","):
        print(f"[{name}] {kind}", flush=True)
        with running(kind, setup, args.llama_server, out_dir / "logs" / name) as base_url:
            sweep = asyncio.run(scenarios.sweep(base_url, levels, args.tokens, bias))
            entry: dict[str, Any] = {"levels": sweep}
            if kind in ("streamserve", "llama-server"):
                entry["long_prompt"] = asyncio.run(scenarios.long_prompt_during_streams(base_url, bias))
                entry["second_turn"] = asyncio.run(scenarios.second_turn(base_url))
            result["systems"][kind] = entry


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
                         capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": __import__("os").cpu_count(), "python": platform.python_version(),
            "llama_cpp_python": __import__("llama_cpp").__version__, "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                         time.gmtime())}


def main() -> None:
    """Run everything, write JSON, markdown and the plot."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="smollm2-135m-instruct,gemma-3-270m")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--llama-server", default=str(Path.home() / ".cache/streamserve-bench/llama-server"),
                        help="path to a llama-server binary built from llama-cpp-python's vendored llama.cpp")
    parser.add_argument("--levels", default="1,4,16")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--max-model-len", type=int, default=2048, help="per-sequence context, the same for all")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="docs")
    parser.add_argument("--mixed-only", action="store_true",
                        help="only the mixed-load scenario (streamserve and llama-server); writes JSON, no docs")
    parser.add_argument("--no-mixed", action="store_true",
                        help="skip the mixed-load scenario (its section in performance.md is then kept as it was)")
    parser.add_argument("--shorts", type=int, default=16, help="short chats in the mixed-load scenario")
    args = parser.parse_args()
    out_dir = Path(args.out)
    results: dict[str, Any] = {"machine": machine(), "command": " ".join(sys.argv), "models": []}
    json_path = Path("benchmarks/out/mixed_load.json") if args.mixed_only else out_dir / "performance.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    for name in args.models.split(","):
        results["models"].append(bench_model(name, args, Path("benchmarks/out")))
        json_path.write_text(json.dumps(results, indent=2))
    if args.mixed_only:
        for m in results["models"]:
            print("\n".join(report.mixed_section(m)))
        return
    report.write(results, out_dir)
    print((out_dir / "performance.md").read_text())


if __name__ == "__main__":
    main()
