"""The CPU-kernel choice: extra buffer types listed, forced modes, and the probe's crash fallback."""

from __future__ import annotations

from pathlib import Path

import llama_cpp.llama_cpp as lc
import pytest

from streamserve.llama import ProbeSettings, choose_kernels
from streamserve.llama.kernels import extra_buffer_types, run_probe
from streamserve.llama.probe import FAULT_ENV
from streamserve.models import resolve_model

SETTINGS = ProbeSettings(n_batch=64, n_threads=1)


@pytest.fixture(scope="module")
def path() -> Path:
    return resolve_model("smollm2-135m-instruct")[1]


def test_extra_buffer_types_match_the_build() -> None:
    info = lc.llama_print_system_info().decode()
    names = extra_buffer_types()
    assert all(isinstance(name, str) and name for name in names)
    assert ("CPU_REPACK" in names) == ("REPACK = 1" in info)
    assert ("AMX" in names) == ("AMX_INT8 = 1" in info)


@pytest.mark.parametrize(("mode", "enabled"), [("on", True), ("off", False)])
def test_forced_modes_skip_the_probe(path: Path, mode: str, enabled: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAULT_ENV, "crash")  # a probe would fail: forced modes must not run it
    choice = choose_kernels.__wrapped__(path, mode, SETTINGS)  # uncached
    assert choice.extra_bufts is enabled
    assert f"forced by --extra-bufts {mode}" in choice.reason


def test_probe_crash_is_reported_with_its_signal(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAULT_ENV, "crash")
    assert run_probe(path, SETTINGS) == "crashed the probe process (SIGSEGV)"


def test_auto_falls_back_when_the_probe_crashes(
    path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert extra_buffer_types(), "this llama.cpp build has no extra buffer type to probe"
    monkeypatch.setenv(FAULT_ENV, "crash")
    choice = choose_kernels.__wrapped__(path, "auto", SETTINGS)
    assert choice.extra_bufts is False
    assert "SIGSEGV" in choice.reason
    assert any("SIGSEGV" in record.getMessage() and record.levelname == "WARNING" for record in caplog.records)


def test_a_bad_model_fails_the_probe_without_a_signal(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"GGUF but not really")
    failure = run_probe(bogus, SETTINGS)
    assert failure is not None and failure.startswith("failed in the probe process (exit 1")
