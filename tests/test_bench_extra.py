"""The ``bench`` extra: ``streamserve serve`` needs neither matplotlib nor rich and never imports them, and
``streamserve bench`` without them says in one line which extra to install.

Proved in subprocesses where both are unimportable (``tests/hidden_extra``), not by uninstalling them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streamserve.bench.extra import missing_extra, missing_packages
from tests.hiddenextra import refused_imports, run_without_bench_extra

MESSAGE = "streamserve bench needs matplotlib and rich, from the 'bench' extra: pip install 'streamserve[bench]'"

APP = """
import sys
import tempfile
from pathlib import Path

import streamserve.bench
import streamserve.bench.hostile
import streamserve.bench.prometheus
import streamserve.bench.rss
from streamserve.api.app import create_app
from streamserve.cli import build_parser
from streamserve.config import ServerConfig

build_parser()
app = create_app(ServerConfig(model="smollm2-135m-instruct", data_dir=Path(tempfile.mkdtemp())), ("m",))
schema = app.openapi()
print(" ".join(sorted(schema["paths"])))
print(sorted(name for name in sys.modules if name.partition(".")[0] in ("matplotlib", "rich")))
"""


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """The file the hidden extra's refused imports are logged to."""
    return tmp_path / "refused.log"


def test_the_test_environment_has_the_extra() -> None:
    assert missing_packages() == [] and missing_extra() is None


def test_the_hook_makes_the_extra_unimportable(log: Path) -> None:
    done = run_without_bench_extra(["-c", "import matplotlib.figure"], log)
    assert done.returncode == 1 and "ModuleNotFoundError: No module named 'matplotlib'" in done.stderr
    assert [line.split()[1] for line in refused_imports(log)] == ["matplotlib"]  # the package, then nothing


def test_serve_help_without_the_extra(log: Path) -> None:
    done = run_without_bench_extra(["-m", "streamserve", "serve", "--help"], log)
    assert done.returncode == 0, done.stderr
    assert "--model" in done.stdout and "--parallel" in done.stdout
    assert refused_imports(log) == []


def test_the_app_is_built_without_the_extra(log: Path) -> None:
    done = run_without_bench_extra(["-c", APP], log)
    assert done.returncode == 0, done.stderr
    paths, modules = done.stdout.splitlines()
    assert {"/v1/chat/completions", "/v1/completions", "/v1/responses", "/health"} <= set(paths.split())
    assert modules == "[]"
    assert refused_imports(log) == []


@pytest.mark.parametrize("args", [
    ["-m", "streamserve", "bench", "compare", "--help"],
    ["-m", "streamserve", "bench", "load", "--base-url", "http://127.0.0.1:9/v1", "--requests", "1"],
    ["-m", "streamserve.bench", "compare", "--help"],
], ids=["bench-compare-help", "bench-load", "python-m-streamserve.bench"])
def test_bench_without_the_extra_names_it_in_one_line(args: list[str], log: Path) -> None:
    done = run_without_bench_extra(args, log)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [MESSAGE]


def test_bench_help_with_the_extra(log: Path) -> None:
    """The same command where the extra is importable: it is the hidden extra that the message is about."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "streamserve", "bench", "compare", "--help"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "--runs" in done.stdout and "streamserve[bench]" not in done.stderr
