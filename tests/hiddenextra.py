"""Run Python subprocesses as if the ``bench`` extra (matplotlib, rich) were not installed.

``tests/hidden_extra/sitecustomize.py`` refuses their imports in every process started with the
environment ``env_without_bench_extra`` gives, and logs each refused import, so a test can tell
"never imported" from "imported and the failure swallowed".
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HOOK_DIR = Path(__file__).parent / "hidden_extra"


def env_without_bench_extra(log: Path) -> dict[str, str]:
    """Environment variables that hide the extra in a child process and log its refused imports to ``log``."""
    path = os.pathsep.join(p for p in (str(HOOK_DIR), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "STREAMSERVE_REFUSED_LOG": str(log)}


def run_without_bench_extra(args: list[str], log: Path) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` with the extra hidden; its output captured as text."""
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, **env_without_bench_extra(log)})


def refused_imports(log: Path) -> list[str]:
    """The imports of matplotlib or rich that processes tried (and were refused), as ``"PID NAME"`` lines."""
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []
