"""Turn the engine benchmark's JSON into docs/performance.md tables and a tokens/s plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _f(value: float | None, digits: int = 1, scale: float = 1.0) -> str:
    return "–" if value is None else f"{value * scale:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _check(ok: bool | None) -> str:
    return "–" if ok is None else ("met" if ok else "**missed**")


def model_section(m: dict[str, Any]) -> list[str]:
    """The tables of one model: the sweep, the targets, and the latency scenarios."""
    systems = m["systems"]
    levels = sorted({int(level) for s in systems.values() for level in s["levels"]})
    lines = [f"### {m['model']}", "", "| system | streams | output tok/s | TTFT p50 (ms) | TTFT p99 (ms) | "
             "ITL p50 (ms) | ITL p99 (ms) | errors | short |", "|---|---|---|---|---|---|---|---|---|"]
    for level in levels:
        bare = _f(m["bare_loop"].get(str(level)))
        lines.append(f"| bare `llama_decode` loop | {level} | {bare} | – | – | – | – | – | – |")
    for name, s in systems.items():
        for level in levels:
            r = s["levels"][str(level)]
            lines.append(
                f"| {name} | {level} | {_f(r['output_tokens_per_s'])} | {_f(r['ttft_p50'], 0, 1000)} | "
                f"{_f(r['ttft_p99'], 0, 1000)} | {_f(r['itl_p50'], 1, 1000)} | {_f(r['itl_p99'], 1, 1000)} | "
                f"{r['errors']} | {r.get('short_requests', 0)} |"
            )
    lines += ["", "| target | figure | |", "|---|---|---|"]
    for row in targets(m):
        lines.append(f"| {row[0]} | {row[1]} | {_check(row[2])} |")
    return [*lines, "", *mixed_section(m)]


def mixed_section(m: dict[str, Any]) -> list[str]:
    """The mixed-load table of one model, with its target (short-request TTFT p99 <= 0.2x llama-server's)."""
    mixed = m.get("mixed_load") or {}
    if not mixed:
        return []
    lines = [f"#### {m['model']}: mixed load", "",
             "Short chats (one a second) and 4 conversations sharing a system prompt (3 turns each) arrive while "
             "4 streams generate and two ~3,500-token prompts are read; 8 lanes of 4,096 tokens.", "",
             "| system | short TTFT p50 (ms) | short TTFT p99 (ms) | long prompts' TTFT (s) | streams' ITL p50 (ms) | "
             "streams' ITL p99 (ms) | cached / prompt tokens, turns 2-3 | turns with whole history cached | errors |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in mixed.items():
        longs = ", ".join(_f(t, 1) for t in r["long_prompt_ttft"])
        lines.append(
            f"| {name} | {_f(r['short_ttft_p50'], 0, 1000)} | {_f(r['short_ttft_p99'], 0, 1000)} | {longs} | "
            f"{_f(r['stream_itl_p50'], 1, 1000)} | {_f(r['stream_itl_p99'], 1, 1000)} | "
            f"{_f(r['cached_token_ratio'], 2)} | {r['turns_with_whole_history_cached']} of {r['conversation_turns']} | "
            f"{r['errors']} |")
    ours, theirs = mixed.get("streamserve"), mixed.get("llama-server")
    if ours and theirs:
        ratio = _ratio(ours["short_ttft_p99"], theirs["short_ttft_p99"])
        lines += ["", "| target | figure | |", "|---|---|---|",
                  f"| short-request TTFT p99 under mixed load vs llama-server | {_f(ratio, 2)}x (goal <= 0.2x) | "
                  f"{_check(None if ratio is None else ratio <= 0.2)} |"]
    return [*lines, ""]


def targets(m: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """The engine issue's targets for one model: (what, figure, met)."""
    s = m["systems"]
    top = str(max(int(level) for level in s["streamserve"]["levels"]))
    ours = s["streamserve"]["levels"]
    tps = ours[top]["output_tokens_per_s"]
    rows: list[tuple[str, str, bool | None]] = []

    def ratio_row(label: str, other: float | None, goal: float) -> None:
        r = _ratio(tps, other)
        rows.append((label, f"{_f(r, 2)}x (goal >= {goal}x)", None if r is None else r >= goal))

    if "llama-cpp-python" in s:
        ratio_row(f"tok/s at {top} streams vs llama-cpp-python server", s["llama-cpp-python"]["levels"][top]
                  ["output_tokens_per_s"], 3.0)
    if "llama-server" in s:
        ratio_row(f"tok/s at {top} streams vs llama-server", s["llama-server"]["levels"][top]["output_tokens_per_s"],
                  1.0)
        ours_p99, theirs_p99 = ours[top]["ttft_p99"], s["llama-server"]["levels"][top]["ttft_p99"]
        rows.append((f"TTFT p99 at {top} streams vs llama-server",
                     f"{_f(ours_p99, 0, 1000)} ms vs {_f(theirs_p99, 0, 1000)} ms",
                     None if ours_p99 is None or theirs_p99 is None else ours_p99 <= theirs_p99))
    ratio_row(f"tok/s at {top} streams vs bare loop", m["bare_loop"].get(top), 0.9)
    one = _ratio(ours["1"]["output_tokens_per_s"], m["bare_loop"].get("1")) if "1" in ours else None
    rows.append(("tok/s at 1 stream vs bare loop", f"{_f(one, 2)}x (goal >= 0.95x)",
                 None if one is None else one >= 0.95))
    lp = s["streamserve"].get("long_prompt")
    if lp:
        r = lp["ratio_p99_p50"]
        label = f"ITL p99 / p50 of {lp['streams']} streams while a {lp['long_prompt_tokens']}-token prompt arrives"
        rows.append((label,
                     f"{_f(r, 2)} ({_f(lp['itl_p99'], 1, 1000)} / {_f(lp['itl_p50'], 1, 1000)} ms; goal <= 2.5)",
                     None if r is None else r <= 2.5))
    st = s["streamserve"].get("second_turn")
    if st:
        r = st["ratio_median"]
        rows.append((f"second-turn TTFT / first-turn TTFT ({st['turn2_prompt_tokens']} prompt tokens)",
                     f"{_f(r, 2)} ({_f(st['ttft_turn2_median'], 0, 1000)} / {_f(st['ttft_turn1_median'], 0, 1000)} ms;"
                     " goal <= 0.3)", None if r is None else r <= 0.3))
    return rows


def plot(results: dict[str, Any], path: Path) -> None:
    """Output tokens/s against concurrency, one panel per model."""
    models = results["models"]
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.2), squeeze=False)
    for ax, m in zip(axes[0], models, strict=True):
        levels = sorted(int(level) for level in m["bare_loop"])
        ax.plot(levels, [m["bare_loop"][str(level)] for level in levels], "k--", marker="o", label="bare loop")
        for name, s in m["systems"].items():
            xs = sorted(int(level) for level in s["levels"])
            ax.plot(xs, [s["levels"][str(x)]["output_tokens_per_s"] for x in xs], marker="o", label=name)
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(level) for level in levels])
        ax.set_xlabel("concurrent streams")
        ax.set_ylabel("output tokens/s (aggregate)")
        ax.set_title(m["model"])
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict[str, Any], out_dir: Path) -> None:
    """Write performance.md (tables, targets, machine, command) and performance.png."""
    plot(results, out_dir / "performance.png")
    mach = results["machine"]
    lines = [
        "# Performance", "",
        "Measured by `benchmarks/engine_bench.py`, run alone on the machine; figures from one run, side by side.",
        "Absolute numbers move from run to run on a shared machine; the ratios are what count.", "",
        f"- machine: {mach['cpu']}, {mach['cores']} cores; Python {mach['python']}; "
        f"llama-cpp-python {mach['llama_cpp_python']}; {mach['date']}",
        f"- command: `{results['command']}`",
        "- every system: the same GGUF, 16 lanes of the same per-sequence context, the same threads; each of N "
        "clients streams 2 completions of 128 tokens in turn (prompt \"1, 2, 3, 4, 5, 6, 7, 8,\", temperature 0, "
        "end-of-generation tokens biased away; *short* counts requests that returned fewer tokens).",
        "- TTFT: request sent to first content chunk. ITL: gap between content chunks. "
        "Definitions in [benchmarking.md](benchmarking.md).", "",
        "![output tokens/s against concurrency](performance.png)", "",
    ]
    for m in results["models"]:
        lines += model_section(m)
    lines += NOTES
    path = out_dir / "performance.md"
    old = path.read_text() if path.exists() else ""
    _, marker, kept = old.partition(KEPT)
    text = "\n".join(lines) + "\n"
    top = _block(old, COMPARE_BEGIN, COMPARE_END)
    if top:  # the regression guard's table (engine_compare.py) stays first
        title, _, rest = text.partition("\n\n")
        text = title + "\n\n" + top + "\n\n" + rest
    path.write_text(text + "\n" + KEPT + kept if marker else text)


def _block(text: str, begin: str, end: str) -> str:
    """The part of ``text`` from ``begin`` through ``end`` (markers included), or ""."""
    start = text.find(begin)
    stop = text.find(end, start)
    return text[start : stop + len(end)] if start >= 0 and stop >= 0 else ""


KEPT = "<!-- Sections below are written by other benchmarks; engine_bench.py keeps them. -->"
COMPARE_BEGIN = "<!-- engine_compare.py: begin -->"
COMPARE_END = "<!-- engine_compare.py: end -->"


NOTES = [
    "## What the figures rest on", "",
    "- **Batch rows in lane order.** llama.cpp splits a batch whose sequence ids are out of order into "
    "slower pieces; with lanes reused in LRU order that cost 1.7x per step at 16 streams until the runner "
    "sorted its rows by lane.",
    "- **Every decode on the engine thread.** llama.cpp decodes about 2x slower from a thread other than "
    "the one that first decoded; the warm-up decode therefore runs on the engine thread itself.",
    "- **One GIL hand-off per step.** Sampling and end-of-generation checks (microseconds, once per token) "
    "keep the GIL (`llama/gilfree.py`); only `llama_decode` releases it, so the engine thread does not "
    "queue behind the event loop for every token.",
    "- **Prompt reading sized online.** While streams decode, a step adds only the prompt tokens that keep "
    "it within `--prefill-stall` (2) times a decode-only step, from measured costs: a 1,700-token prompt "
    "does not freeze 8 running streams (ITL p99/p50 above), at the price of a slower first token for "
    "that long prompt.",
    "- **Prefix reuse.** A second chat turn reuses its own lane's KV cache; a new conversation that shares "
    "a system prompt copies that prefix from another lane instead of evicting it. Since issue 14 only whole "
    "64-token grid chunks are reused, so that a cached prompt gives a fresh read's output bit for bit "
    "([determinism.md](determinism.md)).",
    "", "## Known gaps", "",
    "- At one stream on SmolLM2 (about 6 ms per token) the per-step Python work of the engine and the "
    "event loop (scheduling, SSE framing, the HTTP write) is a visible share of each token; llama-server "
    "pays a smaller C++ overhead there. On Gemma 3 270M (11 ms per token) it disappears in the noise.",
    "- llama-cpp-python's server is run with `--interrupt_requests False`: by default a new request cuts "
    "off the running stream, which makes its concurrency figures meaningless.",
]
