"""A throwaway PostgreSQL cluster for tests: initdb in a temporary directory, on 127.0.0.1, stopped afterwards.

Debian's server refuses to run as root, so as root the directory is given to the ``postgres`` user and
every server command runs through ``runuser``. The binaries come from ``pg_config --bindir``, the PATH or
``/usr/lib/postgresql/*/bin`` (``.ci/run`` installs Debian's ``postgresql`` package when they are missing).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.serverproc import free_port


def bindir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``; raises RuntimeError naming the fix if there is none."""
    candidates: list[str] = []
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        candidates.append(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                                         check=True).stdout.strip())
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(os.path.realpath(initdb)).parent))
    candidates.extend(sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True))
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise RuntimeError("PostgreSQL's initdb and pg_ctl were not found: apt-get install postgresql (.ci/run does)")


@dataclass
class Cluster:
    """A running cluster: its port, its directory, and how to make a fresh database."""

    port: int
    directory: Path
    bin: Path
    as_postgres: tuple[str, ...]

    @property
    def user(self) -> str:
        """The superuser the cluster was made with (trust authentication, no password)."""
        return "postgres" if self.as_postgres else os.environ.get("USER", "postgres")

    def url(self, database: str) -> str:
        """The ``--store`` URL of one database."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str = "t") -> str:
        """Create an empty database; returns its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        subprocess.run([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
                        name], check=True, capture_output=True)
        return self.url(name)


def _run(cmd: list[str], as_postgres: tuple[str, ...]) -> None:
    proc = subprocess.run([*as_postgres, *cmd], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


@contextlib.contextmanager
def running_cluster() -> Iterator[Cluster]:
    """initdb, start on a free port with its socket in the directory, yield, then ``pg_ctl stop -m fast``."""
    bin_dir = bindir()
    directory = Path(tempfile.mkdtemp(prefix="streamserve-pg-"))
    as_postgres: tuple[str, ...] = ()
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
        as_postgres = ("runuser", "-u", "postgres", "--")
    data = directory / "data"
    port = free_port()
    cluster = Cluster(port, directory, bin_dir, as_postgres)
    try:
        _run([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", cluster.user, "--no-sync"],
             as_postgres)
        options = (f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50")
        _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(directory / "log"), "-w",
              "start"], as_postgres)
        yield cluster
    finally:
        if (data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):
                _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], as_postgres)
        shutil.rmtree(directory, ignore_errors=True)
