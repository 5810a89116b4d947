"""bench/cli.py: registration on a parent CLI, argument checks, and the package's import rule."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest

import streamserve.bench
from streamserve.bench.cli import add_bench_parser, build_parser, run_bench

BENCH_DIR = Path(streamserve.bench.__file__).parent
ALLOWED_THIRD_PARTY = {"httpx", "rich", "matplotlib", "orjson"}
# The bench extra's packages, imported only by the modules that draw tables and plots.
EXTRA_ONLY_IN = {"rich": {"commands.py", "report.py"}, "matplotlib": {"plots.py"}}


def test_add_bench_parser_registers_both_subcommands() -> None:
    parser = argparse.ArgumentParser(prog="streamserve")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_bench_parser(subparsers)
    args = parser.parse_args(["bench", "load", "--concurrency", "1,2", "--requests", "3", "--no-usage"])
    assert args.command == "bench" and args.bench_command == "load" and args.func is run_bench
    assert args.concurrency == [1, 2] and args.requests == 3 and args.no_usage
    assert args.base_url == "http://127.0.0.1:8000/v1" and args.endpoint == "chat"
    compare = parser.parse_args(["bench", "compare", "--runs", "5"])
    assert compare.bench_command == "compare" and compare.runs == 5 and compare.plot == Path("bench-compare.png")


BAD_ARGUMENTS = [
    ["load", "--concurrency", "0"],
    ["load", "--concurrency", "a,b"],
    ["load", "--concurrency", ","],
    ["compare", "--runs", "0"],
    ["load", "--timeout", "-1"],
    ["compare", "--endpoint", "embeddings"],
]


@pytest.mark.parametrize("bad", BAD_ARGUMENTS)
def test_bad_arguments_are_rejected(bad: list[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        build_parser().parse_args(bad)
    assert excinfo.value.code == 2


def test_bench_imports_nothing_from_the_server() -> None:
    for path in sorted(BENCH_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level > 0:
                    assert node.level == 1, f"{path.name} imports from outside bench/"
                    continue
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in ALLOWED_THIRD_PARTY or top == "__future__" or _is_stdlib(top), (
                    f"{path.name} imports {name}"
                )
                assert path.name in EXTRA_ONLY_IN.get(top, {path.name}), f"{path.name} imports {name}"


def _is_stdlib(name: str) -> bool:
    import sys

    return name in sys.stdlib_module_names


def test_public_names() -> None:
    for name in streamserve.bench.__all__:
        assert hasattr(streamserve.bench, name), name
