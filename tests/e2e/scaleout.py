"""Processes of the scale-out test: replicas on fixed ports (so a restart keeps its router URL) and SMG."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.serverproc import free_port

DEADLINE_S = 300.0


class Replica:
    """One ``streamserve serve`` on a fixed port with its own data directory and log; it can be restarted."""

    def __init__(self, name: str, args: tuple[str, ...]) -> None:
        self.name = name
        self.args = args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.directory = Path(tempfile.mkdtemp(prefix=f"streamserve-{name}-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def base_url(self) -> str:
        """The OpenAI base URL."""
        return self.url + "/v1"

    def start(self) -> None:
        """Start (again) and wait until ``/health`` says 200."""
        self.starts += 1
        log = (self.directory / f"log{self.starts}").open("wb")
        cmd = [sys.executable, "-m", "streamserve", "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--data-dir", str(self.directory / "data"), *self.args]
        self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_until(lambda: _ok(self.url + "/health"), f"replica {self.name} healthy", self.process, self.log)

    def log(self) -> str:
        """The current run's log."""
        path = self.directory / f"log{self.starts}"
        return path.read_text(errors="replace") if path.exists() else ""

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the process."""
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self) -> None:
        """SIGINT, then SIGKILL if it does not exit within 30 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def remove(self) -> None:
        """Stop and delete the data directory and logs."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class Router:
    """``smg launch`` over the replicas, health-checking them every second."""

    def __init__(self, replicas: list[Replica], policy: str, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        binary = shutil.which("smg") or str(Path(sys.executable).parent / "smg")
        self.log_file = tempfile.NamedTemporaryFile(prefix="smg-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(
            [binary, "launch", "--host", "127.0.0.1", "--port", str(self.port),
             "--worker-urls", *(r.url for r in replicas), "--policy", policy,
             "--health-check-interval-secs", "1", "--health-failure-threshold", "1",
             "--health-success-threshold", "1", "--health-check-timeout-secs", "1",
             "--prometheus-host", "127.0.0.1", "--prometheus-port", str(free_port()),
             "--history-backend", "none", "--shutdown-grace-period-secs", "1", "--log-level", "warn", *extra],
            stdout=self.log_file, stderr=subprocess.STDOUT, env={**os.environ, "NO_COLOR": "1"})
        wait_until(lambda: _ok(self.url + "/v1/models"), "smg ready", self.process, self.log)

    @property
    def base_url(self) -> str:
        """The OpenAI base URL."""
        return self.url + "/v1"

    def log(self) -> str:
        """What SMG printed."""
        return Path(self.log_file.name).read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.unlink(self.log_file.name)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(check: object, what: str, process: subprocess.Popen[bytes] | None = None,
               log: object = None, deadline_s: float = DEADLINE_S) -> None:
    """Poll ``check()`` until true; fail naming ``what`` (with the log) if the process dies or time runs out."""
    assert callable(check)
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {process.returncode}:\n{log() if callable(log) else ''}")
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what}: not within {deadline_s:.0f}s:\n{log() if callable(log) else ''}")
