"""A process's resident memory, read from ``/proc/<pid>/status`` (Linux).

The reliability tests and benchmarks watch the server's RSS with it; ``benchmarks/soaklib/memory.py``
samples it over a whole soak run.
"""

from __future__ import annotations

from pathlib import Path


def read_rss(pid: int) -> int | None:
    """The resident set size of ``pid`` in bytes, or None if the process is gone or unreadable."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None
