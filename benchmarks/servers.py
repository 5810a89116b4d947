"""Start and stop the servers the engine benchmark compares, all with the same GGUF, context and threads."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass(frozen=True)
class Setup:
    """What every system gets: the model file, lanes, per-sequence context and CPU threads."""

    model_path: Path
    max_num_seqs: int
    max_model_len: int
    threads: int


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reports_amx(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU reports AMX, where a native llama.cpp build's extra buffer types crash (llama.cpp#20824)."""
    try:
        return "amx_int8" in Path(cpuinfo).read_text()
    except OSError:
        return False


def command(kind: str, setup: Setup, port: int, llama_server: str | None, extra: Sequence[str] = (), *,
            old_names: bool = False) -> list[str]:
    """The command line that starts ``kind`` on ``port``; ``extra`` arguments go to streamserve only.

    ``old_names``: spell streamserve's flags as checkouts before the vLLM names did (``--parallel``,
    ``--ctx-size``), for an older baseline.
    """
    if kind == "streamserve":
        seqs, length = ("--parallel", "--ctx-size") if old_names else ("--max-num-seqs", "--max-model-len")
        return [sys.executable, "-m", "streamserve", "serve", "--model", str(setup.model_path), "--port", str(port),
                seqs, str(setup.max_num_seqs), length, str(setup.max_model_len),
                "--threads", str(setup.threads), "--max-queue", "256", "--log-level", "warning",
                "--data-dir", tempfile.mkdtemp(prefix="streamserve-bench-data-"), *extra]
    if kind == "llama-server":
        if not llama_server:
            raise ValueError("llama-server needs --llama-server PATH")
        return [llama_server, "-m", str(setup.model_path), "--host", "127.0.0.1", "--port", str(port),
                "-np", str(setup.max_num_seqs), "-c", str(setup.max_num_seqs * setup.max_model_len),
                "-t", str(setup.threads), "-tb", str(setup.threads), "--no-webui",
                # streamserve's kernel probe turns the AMX kernels off there: llama-server gets the same kernels
                *(["--no-repack"] if reports_amx() else [])]
    if kind == "llama-cpp-python":
        return [sys.executable, "-m", "llama_cpp.server", "--model", str(setup.model_path), "--port", str(port),
                "--host", "127.0.0.1", "--n_ctx", str(setup.max_model_len), "--n_threads", str(setup.threads),
                "--n_threads_batch", str(setup.threads), "--interrupt_requests", "False"]
    raise ValueError(f"unknown server kind {kind}")


@dataclass
class Spawned:
    """A server process started by ``spawned``: its OpenAI base URL, log, and how it exited."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    exit_code: int | None = None
    stop_seconds: float | None = None


@contextlib.contextmanager
def spawned(name: str, cmd: list[str], port: int, log_dir: Path, *,
            stop_signal: signal.Signals = signal.SIGINT, env: dict[str, str] | None = None,
            poll: float = 0.5) -> Iterator[Spawned]:
    """Run ``cmd`` (listening on ``port``) until the block ends; yields once it answers /v1/models.

    It is asked every ``poll`` seconds. At the end it gets ``stop_signal``, then 30 s to exit before it is
    killed; the exit code and the time it took are recorded on the yielded ``Spawned``. ``env``: the
    process's environment (default: this one's).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                               env={**(env or os.environ), "PYTHONUNBUFFERED": "1"})
    server = Spawned(f"http://127.0.0.1:{port}/v1", process, log_path)
    try:
        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {log_path}")
            try:
                if httpx.get(server.base_url + "/models", timeout=2).status_code == 200 and _healthy(server.base_url):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start; see {log_path}")
            time.sleep(poll)
        yield server
    finally:
        started = time.monotonic()
        if process.poll() is None:
            process.send_signal(stop_signal)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        server.exit_code = process.returncode
        server.stop_seconds = time.monotonic() - started
        log.close()


@contextlib.contextmanager
def running(kind: str, setup: Setup, llama_server: str | None, log_dir: Path, extra: Sequence[str] = (),
            label: str | None = None) -> Iterator[str]:
    """Run one server until the block ends; yields its OpenAI base URL once it answers /v1/models."""
    port = free_port()
    with spawned(label or kind, command(kind, setup, port, llama_server, extra), port, log_dir) as server:
        yield server.base_url


def _healthy(base_url: str) -> bool:
    response = httpx.get(base_url.removesuffix("/v1") + "/health", timeout=2)
    return response.status_code in (200, 404)
