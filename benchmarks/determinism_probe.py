"""Which batch shapes change a row's logits: the measurement behind docs/determinism.md.

Decodes the same tokens cut into batches differently on one llama.cpp context (the engine's settings:
one lane per sequence, ``n_ubatch == n_batch``) and compares logits bit for bit. Three experiments:

- ``classes``: after a prefix read in one piece, a chunk of n tokens; the first row's logits for each
  n. Rows give identical results within a *row-count class* of the ubatch; the boundaries are printed.
- ``cuts``: one prompt read in different chunkings (whole, grid-aligned, cached prefix + rest, ...);
  which give the same logits at the last position as a fresh read in grid chunks.
- ``mix``: a decode row of lane 0 alone, beside other lanes' decode rows, beside a prompt chunk of
  another lane; and a prompt chunk alone or beside decode rows.
- ``tails``: prompt tails of several lanes (random lanes and lengths) decoded in one call against each
  alone, padded with junk rows to whole groups of ``--align`` rows (the engine's ``ROW_GROUP``, 4) and
  unpadded (``--align 1``): how many tails give other logits together than alone.

    OMP_WAIT_POLICY=passive python benchmarks/determinism_probe.py --model gemma-3-270m --grid 64
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
from collections.abc import Iterable

from streamserve.llama import Batch, Context, KernelMode, ProbeSettings, load_model
from streamserve.models import resolve_model

TEXT = ("The history of the lighthouse begins with fires lit on hills to guide ships at night. Later, towers "
        "of stone carried lamps of oil, then of gas, and finally electric lights turned by clockwork. "
        "Keepers lived beside them with their families, trimming wicks and winding weights through storms. ")

Piece = tuple[int, list[int], int]  # (lane, tokens, start position)


class Probe:
    """One context with ``lanes`` lanes; decodes pieces and fingerprints rows' logits."""

    def __init__(self, model_name: str, lanes: int, n_batch: int, threads: int, kernels: KernelMode = "auto") -> None:
        _, path = resolve_model(model_name)
        self.model = load_model(path, kernels, ProbeSettings(n_batch, threads))
        self.ctx = Context(self.model, n_ctx_seq=1024, n_seq_max=lanes, n_batch=n_batch, n_threads=threads)
        self.batch = Batch(n_batch)
        ids = self.model.tokenize(TEXT * 20, add_special=True, parse_special=False)
        self.tokens = ids[:800]
        assert len(self.tokens) == 800, "the probe text is too short for this tokenizer"

    def decode(self, pieces: Iterable[Piece], want: set[tuple[int, int]] | None = None) -> dict[tuple[int, int], str]:
        """Decode ``pieces`` in one llama_decode; fingerprints of the rows (lane, position) in ``want``.

        Without ``want``, each piece's last row. Rows go in lane order, as the engine's runner puts them.
        """
        self.batch.clear()
        rows: dict[tuple[int, int], int] = {}
        for lane, toks, start in sorted(pieces, key=lambda p: p[0]):
            for i, tok in enumerate(toks):
                key = (lane, start + i)
                logits = key in want if want is not None else i == len(toks) - 1
                row = self.batch.add(tok, start + i, lane, logits)
                if logits:
                    rows[key] = row
        self.ctx.decode(self.batch)
        return {key: hashlib.sha1(self.ctx.logits(row).tobytes()).hexdigest()[:12] for key, row in rows.items()}

    def read(self, lane: int, cuts: list[int], start: int = 0) -> str:
        """Read ``self.tokens[start : start + sum(cuts)]`` into ``lane`` in steps of ``cuts``; last row's print."""
        pos, last = start, ""
        for n in cuts:
            (last,) = self.decode([(lane, self.tokens[pos : pos + n], pos)]).values()
            pos += n
        return last

    def reset(self, lane: int, start: int = 0) -> None:
        """Drop lane ``lane``'s tokens from ``start`` on."""
        assert self.ctx.remove(lane, start, -1) or self.ctx.remove(lane)


def classes(p: Probe, prefix: int, sizes: list[int]) -> list[tuple[int, int]]:
    """The first row of an n-token chunk after a ``prefix`` read whole: ranges of n with identical logits."""
    p.reset(0)
    p.read(0, [prefix])
    prints = []
    for n in sizes:
        (fp,) = p.decode([(0, p.tokens[prefix : prefix + n], prefix)], want={(0, prefix)}).values()
        prints.append(fp)
        p.reset(0, prefix)
    ranges: list[tuple[int, int]] = []
    for i, n in enumerate(sizes):
        if i and prints[i] == prints[i - 1]:
            ranges[-1] = (ranges[-1][0], n)
        else:
            ranges.append((n, n))
    distinct = {fp: j for j, fp in enumerate(dict.fromkeys(prints))}
    for lo, hi in ranges:
        print(f"  rows {lo:>3}..{hi:<3} class {distinct[prints[sizes.index(lo)]]}")
    return ranges


def cuts(p: Probe, length: int, grid: int) -> dict[str, str]:
    """The last position's logits of a ``length``-token prompt read in several chunkings."""
    full = length // grid * grid
    tail = length - full
    plans = {
        "grid chunks, tail alone": [grid] * (full // grid) + [tail],
        "full chunks in one piece, tail alone": [full, tail],
        "whole prompt in one piece": [length],
        "grid chunks, tail with last chunk": [grid] * (full // grid - 1) + [grid + tail],
        "halves": [length // 2, length - length // 2],
        "cached 48 then rest": [48, length - 48],
        "cached prefix+7 then rest": [full + 7, tail - 7] if tail > 7 else [full - 7, tail + 7],
        "32-token chunks": [32] * (length // 32) + ([length % 32] if length % 32 else []),
    }
    out = {}
    for name, plan in plans.items():
        p.reset(0)
        out[name] = p.read(0, plan)
    ref = out["grid chunks, tail alone"]
    for name, fp in out.items():
        print(f"  {'==' if fp == ref else '!='} {name:<40} {fp}")
    return out


def mix(p: Probe, prefix: int, grid: int) -> None:
    """Lane 0's decode row and lane 1's prompt chunk, alone and beside other lanes' rows."""
    toks = p.tokens
    for lane in range(p.ctx.n_seq_max):
        p.reset(lane)
    p.read(0, [prefix])
    row0 = (0, [toks[prefix]], prefix)

    def other(lane: int, n: int) -> Piece:
        return (lane, toks[300 : 300 + n], 0)

    def run(name: str, pieces: list[Piece], key: tuple[int, int] = (0, prefix)) -> str:
        fp = p.decode(pieces, want={key})[key]
        for lane, _, _ in pieces:
            p.reset(lane, prefix if lane == 0 else 0)
        print(f"  {name:<52} {fp}")
        return fp

    lanes = p.ctx.n_seq_max
    print(" lane 0's decode row:")
    run("alone (1 row)", [row0])
    run("+ lane 1 decode row", [row0, other(1, 1)])
    run(f"+ lanes 1..{lanes - 1} decode rows", [row0] + [other(k, 1) for k in range(1, lanes)])
    run(f"+ lane {lanes - 1} decode row", [row0, other(lanes - 1, 1)])
    run("+ lane 1 chunk of 8", [row0, other(1, 8)])
    run(f"+ lane 1 chunk of {grid}", [row0, other(1, grid)])
    run(f"+ lane 2 chunk of {grid}", [row0, other(2, grid)])
    run(f"+ lane 1 chunk of {2 * grid}", [row0, other(1, 2 * grid)])
    print(f" lane 1's chunk of {grid}, last row:")
    key = (1, grid - 1)
    run("alone", [other(1, grid)], key)
    run("+ lane 0 decode row", [row0, other(1, grid)], key)
    run("+ lane 2 decode row", [other(1, grid), other(2, 1)], key)
    run(f"+ lane 2 chunk of {grid}", [other(1, grid), other(2, grid)], key)
    print(" lane 1's chunk of 8 (a tail), last row:")
    key = (1, 7)
    run("alone", [other(1, 8)], key)
    run("+ lane 0 decode row", [row0, other(1, 8)], key)
    run(f"+ lane 2 chunk of {grid}", [other(1, 8), other(2, grid)], key)
    run("+ lanes 2..3 decode rows", [other(1, 8), other(2, 1), other(3, 1)], key)


def kv_length(p: Probe, prefix: int, grid: int) -> None:
    """Lane 0's decode row and grid chunk beside lane 1's, as lane 1 holds more tokens (the ubatch's KV span)."""
    toks = p.tokens
    for lane in range(p.ctx.n_seq_max):
        p.reset(lane)
    p.read(0, [prefix])
    row0 = (0, [toks[prefix]], prefix)
    chunk0 = (0, toks[prefix : prefix + grid], prefix)
    ref_row = p.decode([row0])[(0, prefix)]
    p.reset(0, prefix)
    ref_chunk = p.decode([chunk0])[(0, prefix + grid - 1)]
    p.reset(0, prefix)
    print(f"  alone: row {ref_row}  chunk {ref_chunk}")
    for held in (1, 100, 200, 255, 256, 300, 400, 600):
        p.reset(1)
        p.read(1, [min(held, 256)] + ([held - 256] if held > 256 else []))
        row = p.decode([row0, (1, [toks[held]], held)], want={(0, prefix)})[(0, prefix)]
        p.reset(0, prefix)
        p.reset(1, held)
        chunk = p.decode([chunk0, (1, toks[held : held + grid], held)], want={(0, prefix + grid - 1)})
        p.reset(0, prefix)
        fp = chunk[(0, prefix + grid - 1)]
        print(f"  lane 1 holding {held:>3}: row {'==' if row == ref_row else '!='} {row}  "
              f"chunk {'==' if fp == ref_chunk else '!='} {fp}")


def tails(p: Probe, align: int, grid: int, trials: int = 12) -> int:
    """Tails after a 128-token prefix, several lanes in one call against each alone; how many differ.

    Each tail is padded to whole groups of ``align`` rows (at most ``grid``), as the engine pads them, and
    those padded to a whole chunk are decoded in a call of their own, as the engine decodes them with the
    grid chunks.
    """
    rng = random.Random(1)
    toks = p.tokens
    lanes_total = p.ctx.n_seq_max

    def rows(length: int) -> int:
        return min(-(-length // align) * align, grid)

    def piece(lane: int, length: int) -> Piece:
        return (lane, toks[128 : 128 + rows(length)], 128)

    def fresh(lanes: list[int]) -> None:
        for lane in range(lanes_total):
            p.reset(lane)
        for lane in lanes:
            p.read(lane, [64, 64])

    differ = total = 0
    for _ in range(trials):
        lanes = sorted(rng.sample(range(lanes_total), rng.choice([2, 3, 5, lanes_total])))
        lengths = {lane: rng.randint(1, grid - 1) for lane in lanes}
        alone = {}
        for lane in lanes:
            fresh([lane])
            key = (lane, 128 + lengths[lane] - 1)
            alone[lane] = p.decode([piece(lane, lengths[lane])], want={key})[key]
        fresh(lanes)
        together: dict[tuple[int, int], str] = {}
        for whole in (False, True):  # tails padded to a whole chunk go in a call of their own, as the engine's
            group = [lane for lane in lanes if (rows(lengths[lane]) == grid) == whole]
            if group:
                keys = {(lane, 128 + lengths[lane] - 1) for lane in group}
                together |= p.decode([piece(lane, lengths[lane]) for lane in group], want=keys)
        bad = [lane for lane in lanes if together[(lane, 128 + lengths[lane] - 1)] != alone[lane]]
        differ += len(bad)
        total += len(lanes)
        print(f"  lanes {lanes} tails {[lengths[lane] for lane in lanes]}: differ together {bad or 'none'}")
    print(f"  {differ} of {total} tails differ together from alone (padded to {align}-row groups)")
    return differ


def main() -> None:
    """Run the three experiments on one model."""
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--grid", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lanes", type=int, default=8)
    ap.add_argument("--kernels", choices=("auto", "on", "off"), default="auto", help="CPU extra buffer types")
    ap.add_argument("--max-rows", type=int, default=160, help="largest chunk tried by 'classes'")
    ap.add_argument("--align", type=int, default=4, help="row group the tails are padded to ('tails')")
    ap.add_argument("--only", choices=("classes", "cuts", "mix", "kv", "tails"))
    args = ap.parse_args()
    p = Probe(args.model, args.lanes, 512, args.threads, args.kernels)
    print(f"{args.model}: {p.model.kernels.describe() if p.model.kernels else ''}")
    if args.only in (None, "classes"):
        print("classes (first row of an n-row chunk after a 128-token prefix):")
        classes(p, 128, [*range(1, args.max_rows + 1), 200, 256, 320, 384, 448, 512])
    if args.only in (None, "cuts"):
        for length in (200, 2 * args.grid + 1):
            print(f"cuts of a {length}-token prompt (grid {args.grid}):")
            cuts(p, length, args.grid)
    if args.only in (None, "mix"):
        print(f"mix (lane 0 prefix 128, grid {args.grid}):")
        mix(p, 128, args.grid)
    if args.only in (None, "kv"):
        print(f"kv (lane 0 prefix 128 beside lane 1 holding more, grid {args.grid}):")
        kv_length(p, 128, args.grid)
    if args.only in (None, "tails"):
        print(f"tails (several lanes' tails in one call against each alone, grid {args.grid}):")
        tails(p, args.align, args.grid)


if __name__ == "__main__":
    main()
