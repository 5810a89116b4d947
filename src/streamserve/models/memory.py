"""Memory: the budget loaded models share, the sizes it counts, and the process's resident memory."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import os
import re
from pathlib import Path

from streamserve.llama import read_shape
from streamserve.models.builtin import resolve_model

DEFAULT_SHARE = 0.75
"""Without ``--max-memory`` loaded models may take this share of the memory available at start."""

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str) -> int:
    """Bytes from ``8GB``, ``8GiB``, ``512MiB``, ``1.5G`` or a plain number of bytes; ValueError otherwise."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    unit = _UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        raise ValueError(f"a size such as 8GB, 512MiB or 1.5G, got {text!r}")
    size = int(float(match.group(1)) * unit)
    if size <= 0:
        raise ValueError(f"a size must be positive, got {text!r}")
    return size


def available_memory() -> int:
    """Memory available for new allocations without swapping (Linux ``MemAvailable``), in bytes."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def default_budget() -> int:
    """The budget without ``--max-memory``: ``DEFAULT_SHARE`` of the memory available now."""
    return int(available_memory() * DEFAULT_SHARE)


def resident_memory() -> int:
    """This process's resident set size in bytes (what the kernel holds in RAM for it)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def estimate(source: str, kv_tokens: int, logit_rows: int) -> int:
    """Bytes a model (a built-in name or a GGUF path) will take loaded with ``kv_tokens`` of KV cache and
    ``logit_rows`` rows of logits, read from its file before loading it (``llama.read_shape``)."""
    _, path = resolve_model(source)
    return read_shape(path).memory(kv_tokens, logit_rows)


def give_back() -> None:
    """Return freed memory to the system after an unload: collect Python's cycles, then ask glibc to release
    the free pages of its heaps (without it a freed model's buffers stay resident, counted by no one)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)


def format_size(size: int) -> str:
    """``1.5 GiB``, ``812 MiB``: for logs and error messages."""
    if size >= 2**30:
        return f"{size / 2**30:.1f} GiB"
    return f"{size / 2**20:.0f} MiB"
