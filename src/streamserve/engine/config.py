"""EngineConfig: the engine's sizes and limits, validated once at startup."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


def _default_threads() -> int:
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """How many sequences run at once and how much each may hold.

    The field names are the ``streamserve serve`` flags' (``max_num_seqs`` is ``--max-num-seqs``), named as
    vLLM names them where vLLM has the setting, and the defaults here are the command line's.
    ``max_num_seqs`` sequences run at once (continuous batching lanes); ``max_model_len`` is one
    sequence's context (prompt plus output), so the KV cache holds ``max_model_len * max_num_seqs``
    tokens. ``max_num_batched_tokens`` caps one step's batch. While sequences decode, a step adds only
    as many prompt tokens as keep it within ``prefill_stall`` times a decode-only step, so running
    streams keep flowing while a long prompt is prefilled; and any step that prefills takes about
    ``prefill_step_time`` seconds at most, so a request arriving while another's long prompt is prefilled
    gets its own prompt scheduled within about one step. ``extra_bufts`` says whether llama.cpp may use
    its extra CPU buffer types (AMX, repacked weights): ``auto`` lets a probe decide (``llama.kernels``).
    A sequence whose reader leaves ``max_backlog`` steps unread (a client that stopped reading) is
    aborted, freeing its lane.

    Prompts are prefilled in grid-aligned chunks of ``prompt_grid`` tokens plus one tail, so a cached prefix
    gives the logits a fresh prefill gives (docs/determinism.md); ``prompt_grid`` must be at least the
    row count from which llama.cpp's matmuls take their large-batch path (64 on the CPUs measured).
    Beside other work a prompt is prefilled ``prefill_chunks`` grid chunks at least at a time while it has
    them (64-token chunks cost more a token than 128-token ones past position 1,000:
    ``benchmarks/chunk_cost.py``); prefilled alone, in whole batches.
    A prompt with more than ``long_prefill_token_threshold`` tokens to prefill waits without a lane while
    ``max_long_partial_prefills`` such prefills are under way (0: no limit), letting shorter requests pass
    it (``Scheduler.admit``).
    ``deterministic`` decodes each sequence's rows in a llama_decode call of their own, so its output
    does not depend on other traffic whatever the kernels do, at a throughput cost; it also turns
    speculation off. ``speculative`` ``auto`` (the default) drafts from n-grams of each sequence's prompt
    and output where the sequence's measured acceptance and this CPU's measured cost of a verification say
    it pays, but only as many tokens as keep the output what it is without drafts (as the startup probe
    finds: with several threads, none on this llama.cpp build); ``ngram`` drafts whatever pays; ``off``
    never drafts from n-grams (a request's ``prediction`` is drafted from in every mode; docs/speculation.md).
    ``probe_cache``, a directory, keeps that probe's findings between starts (None: measured at every start).
    """

    max_num_seqs: int = 8
    max_model_len: int = 4096
    max_queue: int = 64
    n_threads: int = field(default_factory=_default_threads)
    max_num_batched_tokens: int = 512
    prefill_stall: float = 3.0
    prefill_step_time: float = 0.5
    extra_bufts: Literal["auto", "on", "off"] = "auto"
    max_backlog: int = 1024
    prompt_grid: int = 64
    long_prefill_token_threshold: int = 512
    max_long_partial_prefills: int = 1
    prefill_chunks: int = 2
    deterministic: bool = False
    speculative: Literal["off", "auto", "ngram"] = "auto"
    probe_cache: Path | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.prefill_stall) or self.prefill_stall <= 1.0:
            raise ValueError(f"prefill_stall must be above 1, got {self.prefill_stall}")
        if not math.isfinite(self.prefill_step_time) or self.prefill_step_time <= 0:
            raise ValueError(f"prefill_step_time must be a positive number of seconds, got {self.prefill_step_time}")
        for name in ("max_num_seqs", "max_model_len", "n_threads", "max_num_batched_tokens", "max_backlog",
                     "prompt_grid", "prefill_chunks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.speculative not in ("off", "auto", "ngram"):
            raise ValueError(f"speculative must be off, auto or ngram, got {self.speculative!r}")
        if self.extra_bufts not in ("auto", "on", "off"):
            raise ValueError(f"extra_bufts must be auto, on or off, got {self.extra_bufts!r}")
        for name in ("max_queue", "long_prefill_token_threshold", "max_long_partial_prefills"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be at least 0, got {getattr(self, name)}")
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError(f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be at least max_num_seqs "
                             f"({self.max_num_seqs}): one decode token per sequence")
        least = self.max_num_seqs - 1 + self.prompt_grid
        if self.max_num_batched_tokens < least:
            raise ValueError(f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be at least "
                             f"max_num_seqs - 1 + prompt_grid ({least}): a step prefills a prompt in whole grid "
                             "chunks beside the other sequences' decode tokens")
