"""``streamserve serve`` flags -> ServerConfig: every flag, new and deprecated spelling, lands in its field.

Each case parses one command line and compares the whole config with the defaults changed in exactly
the fields the case names, so a flag that also moved another field fails too. The defaults themselves
come from the config dataclasses, and a combination the config rejects exits 2 with the config's message.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from streamserve.cli import build_parser, main
from streamserve.cli_flags import deprecation_warnings
from streamserve.config import ServerConfig
from streamserve.engine import EngineConfig
from streamserve.models import DEFAULT_MODEL, build_catalog
from streamserve.serve_args import server_config

# (command line, {config field (dotted into engine. / moderation.): value}, the flag it is deprecated for)
CASES: list[tuple[list[str], dict[str, Any], str | None]] = [
    (["--host", "0.0.0.0"], {"host": "0.0.0.0"}, None),
    (["--port", "9001"], {"port": 9001}, None),
    (["--api-key", "sk-test"], {"api_key": "sk-test"}, None),
    (["--allowed-origins", "http://a.test, http://b.test"], {"allowed_origins": ("http://a.test", "http://b.test")},
     None),
    (["--shutdown-timeout", "2m"], {"shutdown_timeout": 120.0}, None),
    (["--shutdown-timeout", "0"], {"shutdown_timeout": 0.0}, None),
    (["--shutdown-grace", "5"], {"shutdown_timeout": 5.0}, "--shutdown-timeout"),
    (["--no-playground"], {"playground": False}, None),
    (["--log-level", "debug"], {"log_level": "debug"}, None),
    (["--served-model-name", "a,b", "--served-model-name", "c"],
     {"models": build_catalog([DEFAULT_MODEL], served_names=["a", "b", "c"])}, None),
    (["--chat-template", "t.jinja"], {"models": build_catalog([DEFAULT_MODEL], chat_template_file="t.jinja")}, None),
    (["--model", "smollm2-135m-instruct", "--model", "gemma-3-270m"],
     {"models": build_catalog(["smollm2-135m-instruct", "gemma-3-270m"])}, None),
    (["--max-memory", "2GiB"], {"max_memory": 2 * 2**30}, None),
    (["--keep-alive", "10m"], {"keep_alive": 600.0}, None),
    (["--max-model-len", "2048"], {"engine.max_model_len": 2048}, None),
    (["--ctx-size", "2048"], {"engine.max_model_len": 2048}, "--max-model-len"),
    (["--max-num-seqs", "3"], {"engine.max_num_seqs": 3}, None),
    (["--parallel", "3"], {"engine.max_num_seqs": 3}, "--max-num-seqs"),
    (["--max-queue", "5"], {"engine.max_queue": 5}, None),
    (["--threads", "1"], {"engine.n_threads": 1}, None),
    (["--max-num-batched-tokens", "256"], {"engine.max_num_batched_tokens": 256}, None),
    (["--max-batch-tokens", "256"], {"engine.max_num_batched_tokens": 256}, "--max-num-batched-tokens"),
    (["--prefill-stall", "2.5"], {"engine.prefill_stall": 2.5}, None),
    (["--max-backlog", "16"], {"engine.max_backlog": 16}, None),
    (["--extra-bufts", "off"], {"engine.extra_bufts": "off"}, None),
    (["--prefill-step-time", "250ms"], {"engine.prefill_step_time": 0.25}, None),
    (["--prefill-step-time", "2"], {"engine.prefill_step_time": 2.0}, None),
    (["--prefill-step-ms", "250"], {"engine.prefill_step_time": 0.25}, "--prefill-step-time"),
    (["--long-prefill-token-threshold", "128"], {"engine.long_prefill_token_threshold": 128}, None),
    (["--long-prompt", "128"], {"engine.long_prefill_token_threshold": 128}, "--long-prefill-token-threshold"),
    (["--max-long-partial-prefills", "0"], {"engine.max_long_partial_prefills": 0}, None),
    (["--max-long-reads", "0"], {"engine.max_long_partial_prefills": 0}, "--max-long-partial-prefills"),
    (["--deterministic"], {"engine.deterministic": True}, None),
    (["--speculative", "ngram"], {"engine.speculative": "ngram"}, None),
    (["--speculative", "off"], {"engine.speculative": "off"}, None),
    (["--prompt-grid", "32"], {"engine.prompt_grid": 32}, None),
    (["--max-tokens-default", "100"], {"max_tokens_default": 100}, None),
    (["--max-n", "2"], {"max_n": 2}, None),
    (["--max-request-bytes", "2048"], {"max_request_bytes": 2048}, None),
    (["--max-request-sequences", "4"], {"max_request_sequences": 4}, None),
    (["--moderation", "async", "--moderation-rules", "rules.toml"],
     {"moderation.mode": "async", "moderation.rules_file": "rules.toml"}, None),
    (["--moderation-window", "50"], {"moderation.window": 50}, None),
    (["--moderation-classifier", "profanity"], {"moderation.classifier": "profanity"}, None),
    (["--moderation-threshold", "0.5"], {"moderation.classifier_threshold": 0.5}, None),
    (["--moderation-model", "guard.gguf"], {"moderation.guard_model": "guard.gguf"}, None),
    (["--data-dir", "~/ss-data"], {"data_dir": Path("~/ss-data").expanduser()}, None),
    (["--store-ttl", "2h"], {"store_ttl": 7200.0}, None),
    (["--store-events-ttl", "90"], {"store_events_ttl": 90.0}, None),
    (["--store-sweep-interval", "500ms"], {"store_sweep_interval": 0.5}, None),
    (["--store", "postgresql://ss@127.0.0.1:5432/ss"], {"store_url": "postgresql://ss@127.0.0.1:5432/ss"}, None),
    (["--store-lease", "3s"], {"store_lease": 3.0}, None),
]


@pytest.fixture(autouse=True)
def _no_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMSERVE_API_KEY", raising=False)


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *argv])


def _serve_parser() -> argparse.ArgumentParser:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser: argparse.ArgumentParser = commands.choices["serve"]
    return parser


def _defaults() -> ServerConfig:
    return ServerConfig()


def _with(config: ServerConfig, changes: dict[str, Any]) -> ServerConfig:
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for path, value in changes.items():
        part, _, name = path.rpartition(".")
        if part:
            nested.setdefault(part, {})[name] = value
        else:
            top[name] = value
    for part, fields in nested.items():
        top[part] = dataclasses.replace(getattr(config, part), **fields)
    return dataclasses.replace(config, **top)


def test_no_flags_give_the_config_dataclasses_defaults() -> None:
    args = _parse()
    assert server_config(args) == _defaults()
    assert deprecation_warnings(args) == ()


@pytest.mark.parametrize(("argv", "changes", "replacement"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_each_flag_lands_in_its_field(argv: list[str], changes: dict[str, Any], replacement: str | None) -> None:
    args = _parse(*argv)
    assert server_config(args) == _with(_defaults(), changes)
    if replacement is None:
        assert deprecation_warnings(args) == ()
    else:
        assert deprecation_warnings(args) == (
            f"{argv[0]} is deprecated and will be removed in the next release: use {replacement}",)


def test_every_serve_flag_has_a_case() -> None:
    flags = {s for action in _serve_parser()._actions for s in action.option_strings} - {"-h", "--help"}
    covered = {arg for argv, _, _ in CASES for arg in argv if arg.startswith("--")} | {"--models-dir", "--models-file"}
    assert flags - covered == set()
    assert covered - flags == set()


def test_model_path_names_the_model_after_its_file(tmp_path: Path) -> None:
    gguf = tmp_path / "tiny-model.gguf"
    gguf.write_bytes(b"GGUF")
    config = server_config(_parse("--model", str(gguf)))
    assert config == dataclasses.replace(_defaults(), models=build_catalog([str(gguf)]))
    assert config.models.names == ("tiny-model",) and config.models.specs[0].preload


def test_a_models_dir_and_a_models_file_add_their_models(tmp_path: Path) -> None:
    (tmp_path / "a.gguf").write_bytes(b"GGUF")
    models_file = tmp_path / "models.toml"
    models_file.write_text('[models.chat]\npath = "smollm2-135m-instruct"\naliases = ["gpt-4o-mini"]\n')
    config = server_config(_parse("--models-dir", str(tmp_path), "--models-file", str(models_file)))
    assert config.models.names == ("a", "chat", "gpt-4o-mini")
    assert not any(spec.preload for spec in config.models.specs)


@pytest.mark.parametrize(("argv", "message"), [(["--max-memory", "lots"], "a size such as"),
                                               (["--keep-alive", "soon"], "invalid duration")])
def test_bad_model_flag_values_are_argparse_errors(argv: list[str], message: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        _parse(*argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_the_new_spelling_wins_when_it_comes_last_and_each_old_name_warns_once() -> None:
    args = _parse("--parallel", "2", "--parallel", "3", "--max-num-seqs", "4", "--ctx-size", "64")
    config = server_config(args)
    assert (config.engine.max_num_seqs, config.engine.max_model_len) == (4, 64)
    assert deprecation_warnings(args) == (
        "--parallel is deprecated and will be removed in the next release: use --max-num-seqs",
        "--ctx-size is deprecated and will be removed in the next release: use --max-model-len",
    )


def test_help_marks_each_old_name_deprecated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    text = _serve_parser().format_help()
    for old, new in [("--ctx-size", "--max-model-len"), ("--parallel", "--max-num-seqs"),
                     ("--max-batch-tokens", "--max-num-batched-tokens"), ("--prefill-step-ms", "--prefill-step-time"),
                     ("--long-prompt", "--long-prefill-token-threshold"),
                     ("--max-long-reads", "--max-long-partial-prefills"), ("--shutdown-grace", "--shutdown-timeout")]:
        assert re.search(rf"^\s+{old} \S+\s+deprecated, use {new}\b", text, re.MULTILINE), old
    assert "(default: 30d)" in text and "(default: 500ms)" in text  # duration defaults in the flags' format


@pytest.mark.parametrize(("flag", "value"), [("--store-ttl", "soon"), ("--shutdown-timeout", "-5s"),
                                             ("--prefill-step-time", "10x"), ("--store-events-ttl", "inf"),
                                             ("--store-sweep-interval", "1e3"), ("--shutdown-grace", "30 sec")])
def test_a_bad_duration_is_an_argparse_error(flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _parse(f"{flag}={value}")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: invalid duration {value!r}" in err
    assert "500ms, 30s, 10m, 2h or 30d (a bare number is seconds)" in err


def _config_error(**engine: Any) -> str:
    with pytest.raises(ValueError) as error:
        EngineConfig(**engine)
    return str(error.value)


@pytest.mark.parametrize(("argv", "message"), [
    (["--max-num-seqs", "16", "--max-num-batched-tokens", "64"],
     _config_error(max_num_seqs=16, max_num_batched_tokens=64)),
    (["--max-num-batched-tokens", "8", "--prompt-grid", "8"], _config_error(max_num_batched_tokens=8, prompt_grid=8)),
    (["--prefill-step-time", "0"], _config_error(prefill_step_time=0.0)),
    (["--store-ttl", "0s"], "store_ttl must be positive, got 0.0"),
])
def test_an_invalid_combination_exits_2_with_the_configs_message(
        argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No silent adjustment: the server does not start, and says what the config says."""
    assert main(["serve", "--data-dir", str(tmp_path), *argv]) == 2
    assert capsys.readouterr().err == f"streamserve: {message}\n"


def test_a_deprecated_name_logs_one_warning_line_at_startup(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    # An invalid value makes the server stop right after its startup checks, without loading the model.
    with caplog.at_level(logging.WARNING, logger="streamserve"):
        assert main(["serve", "--data-dir", str(tmp_path), "--ctx-size", "0", "--prefill-step-ms", "250"]) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "--ctx-size is deprecated and will be removed in the next release: use --max-model-len",
        "--prefill-step-ms is deprecated and will be removed in the next release: use --prefill-step-time",
    ]
    assert capsys.readouterr().err == "streamserve: max_model_len must be at least 1, got 0\n"
