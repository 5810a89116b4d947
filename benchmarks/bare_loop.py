"""The ceiling: batched llama_decode steps over N sequences, greedy, no server, no Python serving code.

Measures decode-only output tokens/s for each batch size with the same per-sequence context and
thread count as the servers. Used by ``engine_bench.py``; runnable alone:

    python benchmarks/bare_loop.py MODEL.gguf --sizes 1,4,16 --tokens 128
"""

from __future__ import annotations

import argparse
import ctypes
import json
import time
from pathlib import Path

import llama_cpp.llama_cpp as lc

from streamserve.llama import ProbeSettings, choose_kernels

PROMPT = "1, 2, 3, 4, 5, 6, 7, 8,"
N_BATCH = 512  # the servers' batch size, also what the kernel probe decodes with


def _silence() -> None:
    @lc.llama_log_callback  # type: ignore[untyped-decorator]
    def quiet(level: int, text: bytes, data: ctypes.c_void_p) -> None:
        pass

    _silence.callback = quiet  # type: ignore[attr-defined]
    lc.llama_log_set(quiet, ctypes.c_void_p(0))


def run(path: str, sizes: list[int], tokens: int, ctx_per_seq: int, threads: int, rounds: int = 2) -> dict[int, float]:
    """Decode-only tokens/s per batch size, the best of ``rounds`` runs (the machine is shared and noisy)."""
    _silence()
    lc.llama_backend_init()
    mparams = lc.llama_model_default_params()
    # The server's kernels: extra buffer types only where its probe proves them safe (AMX can segfault).
    choice = choose_kernels(Path(path), "auto", ProbeSettings(n_batch=N_BATCH, n_threads=threads))
    mparams.use_extra_bufts = choice.extra_bufts
    model = lc.llama_model_load_from_file(path.encode(), mparams)
    vocab = lc.llama_model_get_vocab(model)
    n_seq = max(sizes)
    cparams = lc.llama_context_default_params()
    cparams.n_ctx = ctx_per_seq * n_seq
    cparams.n_batch = cparams.n_ubatch = N_BATCH
    cparams.n_seq_max = n_seq
    cparams.n_threads = cparams.n_threads_batch = threads
    cparams.swa_full = True
    cparams.kv_unified = False
    cparams.no_perf = True
    ctx = lc.llama_init_from_model(model, cparams)
    mem = lc.llama_get_memory(ctx)
    buf = (lc.llama_token * 64)()
    n_prompt = lc.llama_tokenize(vocab, PROMPT.encode(), len(PROMPT.encode()), buf, 64,
                                 bool(lc.llama_vocab_get_add_bos(vocab)), False)
    prompt = list(buf[:n_prompt])
    batch = lc.llama_batch_init(N_BATCH, 0, 1)
    results: dict[int, float] = {}

    def add(row: int, token: int, pos: int, seq: int, logits: bool) -> None:
        batch.token[row] = token
        batch.pos[row] = pos
        batch.n_seq_id[row] = 1
        batch.seq_id[row][0] = seq
        batch.logits[row] = logits

    for size in sizes:
        best = 0.0
        for _ in range(rounds):
            lc.llama_memory_clear(mem, True)
            samplers = []
            for _s in range(size):
                chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
                lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
                samplers.append(chain)
            row = 0
            for seq in range(size):
                for i, token in enumerate(prompt):
                    add(row, token, i, seq, i == len(prompt) - 1)
                    row += 1
            batch.n_tokens = row
            assert lc.llama_decode(ctx, batch) == 0
            rows = [(seq + 1) * len(prompt) - 1 for seq in range(size)]
            start = time.perf_counter()
            for step in range(tokens):
                next_tokens = [lc.llama_sampler_sample(samplers[s], ctx, rows[s]) for s in range(size)]
                if step == tokens - 1:
                    break
                for s, token in enumerate(next_tokens):
                    add(s, token, len(prompt) + step, s, True)
                batch.n_tokens = size
                rows = list(range(size))
                assert lc.llama_decode(ctx, batch) == 0
            elapsed = time.perf_counter() - start
            best = max(best, size * tokens / elapsed)
            for chain in samplers:
                lc.llama_sampler_free(chain)
        results[size] = best
    lc.llama_batch_free(batch)
    lc.llama_free(ctx)
    lc.llama_model_free(model)
    return results


def main() -> None:
    """Print decode-only tokens/s per batch size as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--sizes", default="1,4,16")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(json.dumps(run(args.model, sizes, args.tokens, args.max_model_len, args.threads)))


if __name__ == "__main__":
    main()
