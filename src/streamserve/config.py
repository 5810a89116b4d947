"""ServerConfig: everything ``streamserve serve`` was asked for, validated once."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from streamserve.engine import EngineConfig
from streamserve.models import DEFAULT_MODEL, Catalog, build_catalog, cache_dir

DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024
"""Request bodies above this get 413 (a 4,096-token chat is about 20 KB)."""

DAY = 86400.0

LogLevel = Literal["debug", "info", "warning", "error"]


def default_data_dir() -> Path:
    """Where stored responses live by default: ``$XDG_DATA_HOME/streamserve`` (``~/.local/share/streamserve``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "streamserve"


def default_engine() -> EngineConfig:
    """The served engines' settings by default: EngineConfig's, with the startup probe's findings kept in
    ``cache_dir()/probes`` so a restart skips measuring again."""
    return EngineConfig(probe_cache=cache_dir() / "probes")


@dataclass(frozen=True, slots=True)
class ModerationConfig:
    """Which moderation policies run, and how streams are moderated by default.

    ``mode`` is the server default for every request (``off`` still lets a request ask for
    moderation through OpenAI's ``moderation`` field). ``window`` bounds how many characters
    released text may lag behind generated text (blocking) or checks behind released text (async).
    """

    mode: Literal["off", "blocking", "async"] = "off"
    window: int = 200
    rules_file: str | None = None
    classifier: Literal["profanity"] | None = None
    classifier_threshold: float = 0.9
    guard_model: str | None = None

    @property
    def enabled(self) -> bool:
        """Whether any policy is configured (requests may then ask for moderation)."""
        return bool(self.rules_file or self.classifier or self.guard_model)

    def __post_init__(self) -> None:
        if self.window < 8:
            raise ValueError(f"moderation window must be at least 8 characters, got {self.window}")
        if not 0.0 < self.classifier_threshold <= 1.0:
            raise ValueError("moderation classifier threshold must be in (0, 1]")
        if self.mode != "off" and not self.enabled:
            raise ValueError(f"--moderation {self.mode} needs a policy: --moderation-rules FILE, "
                             "--moderation-classifier profanity or --moderation-model PATH")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The HTTP server's settings, the models and the engine's configuration.

    The defaults here are the ``streamserve serve`` defaults: the command line reads them from this class.
    ``models`` are every servable model and its names (by default the one default model, loaded at start);
    ``/v1/models`` lists them all. Loaded models take at most ``max_memory`` bytes together (None:
    ``models.memory.default_budget``); one idle for ``keep_alive`` seconds is unloaded (None: only to make
    room).
    ``max_n`` caps ``n``; ``max_request_sequences`` caps prompts x ``n``, so one request cannot fill the queue.
    Stored responses live under ``data_dir`` for ``store_ttl`` seconds; their event logs (for resuming
    streams) for ``store_events_ttl`` seconds after they end. Expired rows are swept every
    ``store_sweep_interval`` seconds. ``store_url`` names a shared PostgreSQL store instead (several
    replicas); each replica then owns its running responses under a lease of ``store_lease`` seconds.
    On SIGTERM or Ctrl-C, running streams may take ``shutdown_timeout``
    seconds to finish (0: they are ended at once).
    """

    models: Catalog = field(default_factory=lambda: build_catalog([DEFAULT_MODEL]))
    host: str = "127.0.0.1"
    port: int = 8000
    max_memory: int | None = None
    keep_alive: float | None = None
    api_key: str | None = None
    max_tokens_default: int | None = None
    max_n: int = 8
    max_request_sequences: int = 16
    max_stop_strings: int = 4
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    allowed_origins: tuple[str, ...] = ()
    playground: bool = True
    engine: EngineConfig = field(default_factory=default_engine)
    moderation: ModerationConfig = field(default_factory=ModerationConfig)
    data_dir: Path = field(default_factory=default_data_dir)
    store_ttl: float = 30 * DAY
    store_events_ttl: float = 600.0
    store_sweep_interval: float = 60.0
    store_url: str | None = None
    store_lease: float = 15.0
    shutdown_timeout: float = 30.0
    log_level: LogLevel = "info"

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if self.max_tokens_default is not None and self.max_tokens_default < 1:
            raise ValueError("max_tokens_default must be at least 1")
        if self.max_request_bytes < 1024:
            raise ValueError("max_request_bytes must be at least 1024")
        if self.max_n < 1:
            raise ValueError("max_n must be at least 1")
        for name in ("store_ttl", "store_events_ttl", "store_sweep_interval", "store_lease"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_request_sequences < 1:
            raise ValueError("max_request_sequences must be at least 1")
        if not (math.isfinite(self.shutdown_timeout) and self.shutdown_timeout >= 0):
            raise ValueError(f"shutdown_timeout must be at least 0 seconds, got {self.shutdown_timeout}")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ValueError(f"log_level must be debug, info, warning or error, got {self.log_level!r}")

    def sequences_per_request(self, engine: EngineConfig) -> int:
        """The most sequences (prompts x n) one request may take from an engine: the cap, within lanes plus queue."""
        return min(self.max_request_sequences, engine.max_num_seqs + engine.max_queue)
