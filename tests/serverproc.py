"""Start a real streamserve process on 127.0.0.1 for end-to-end tests, and stop it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

HEALTH_DEADLINE_S = 300.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A running server: its root URL, its OpenAI base URL (ending in /v1) and its log file."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, as the client's ``base_url`` wants it."""
        return self.url + "/v1"

    def log(self) -> str:
        """Everything the server has printed so far."""
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def running_server(*args: str, env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """Run ``streamserve serve ARGS`` on a free port until the block ends; wait for /health first.

    Unless ARGS name a ``--data-dir``, the server stores responses in a fresh temporary directory,
    removed afterwards (one server per data directory; never the user's own).
    """
    port = free_port()
    log_file = tempfile.NamedTemporaryFile(prefix="streamserve-", suffix=".log", delete=False)  # noqa: SIM115
    scratch = None if "--data-dir" in args else tempfile.mkdtemp(prefix="streamserve-data-")
    data_args = () if scratch is None else ("--data-dir", scratch)
    cmd = [sys.executable, "-m", "streamserve", "serve", "--host", "127.0.0.1", "--port", str(port), *data_args,
           *args]
    process = subprocess.Popen(
        cmd, stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )
    server = ServerProcess(f"http://127.0.0.1:{port}", process, Path(log_file.name))
    try:
        _wait_healthy(server)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log_file.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _wait_healthy(server: ServerProcess) -> None:
    deadline = time.monotonic() + HEALTH_DEADLINE_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.url + "/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"server not healthy after {HEALTH_DEADLINE_S:.0f}s:\n{server.log()}")
