"""The models a server can serve: from ``--model`` (any number), ``--models-dir`` and a models file (TOML).

A models file names each model in a table of its own; every key is optional but ``path``:

    [models.chat]                       # the served name
    path = "smollm2-135m-instruct"      # a built-in name, or a .gguf path (relative to this file)
    aliases = ["gpt-4o-mini"]           # more names it answers to
    max_model_len = 2048                # tokens per sequence (--max-model-len)
    max_num_seqs = 4                    # lanes: sequences in flight (--max-num-seqs)
    chat_template = "chatml.jinja"      # a Jinja chat template file (relative to this file)
    pinned = true                       # never unloaded to make room, nor by keep-alive
    preload = true                      # loaded when the server starts
    keep_alive = "10m"                  # unloaded after this long idle (a duration, or -1: never)
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamserve.models.builtin import BUILTIN_MODELS

_FILE_KEYS = {"path", "aliases", "max_model_len", "max_num_seqs", "chat_template", "pinned", "preload", "keep_alive"}


class CatalogError(ValueError):
    """The models asked for cannot be served as given (a clash of names, a bad models file)."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One servable model: where it is, the names it answers to and its own options.

    ``max_model_len`` and ``max_num_seqs`` override the server's engine settings for this model (None:
    the server's). ``keep_alive`` is seconds idle before it is unloaded (None: the server's
    ``--keep-alive``; ``float('inf')``: never).
    """

    name: str
    source: str
    aliases: tuple[str, ...] = ()
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    chat_template_file: str | None = None
    pinned: bool = False
    preload: bool = False
    keep_alive: float | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """Every name a request may use for this model, its own first."""
        return (self.name, *self.aliases)


@dataclass(frozen=True, slots=True)
class Catalog:
    """Every servable model, and which one each served name means."""

    specs: tuple[ModelSpec, ...]
    by_name: dict[str, ModelSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for spec in self.specs:
            for name in spec.names:
                other = self.by_name.get(name)
                if other is not None and other is not spec:
                    raise CatalogError(f"the name {name!r} is given to two models ({other.source} and {spec.source})")
                self.by_name[name] = spec
        if not self.specs:
            raise CatalogError("no model to serve: give --model, --models-dir or --models-file")

    @property
    def names(self) -> tuple[str, ...]:
        """Every served name, in the order the models were given."""
        return tuple(name for spec in self.specs for name in spec.names)

    def get(self, name: str) -> ModelSpec | None:
        """The model ``name`` means, or None."""
        return self.by_name.get(name)


def build_catalog(models: Sequence[str], *, served_names: Sequence[str] = (), models_dir: Path | None = None,
                  models_file: Path | None = None, chat_template_file: str | None = None,
                  duration: Callable[[str], float] = float) -> Catalog:
    """The catalog for what ``serve`` was given.

    One ``--model`` and nothing else serves it as the server always did: loaded at start, never
    unloaded, answering to ``served_names`` too. With several, they load on demand.
    """
    single = len(models) == 1 and models_dir is None and models_file is None
    if served_names and len(models) != 1:
        raise CatalogError("--served-model-name names the one --model; give aliases of several in a models file")
    specs: dict[str, ModelSpec] = {}
    for source in models:
        name = _served_name(source)
        specs[name] = ModelSpec(name, source, tuple(n for n in served_names if n != name),
                                chat_template_file=chat_template_file, pinned=single, preload=single)
    if models_dir is not None:
        if not models_dir.is_dir():
            raise CatalogError(f"--models-dir {models_dir} is not a directory")
        for path in sorted(models_dir.glob("*.gguf")):
            specs.setdefault(path.stem, ModelSpec(path.stem, str(path), chat_template_file=chat_template_file))
    if models_file is not None:
        for spec in _read_models_file(models_file, duration):
            specs[spec.name] = spec
    return Catalog(tuple(specs.values()))


def _served_name(source: str) -> str:
    return source if source in BUILTIN_MODELS else Path(source).stem


def _read_models_file(path: Path, duration: Callable[[str], float]) -> Iterable[ModelSpec]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"cannot read the models file {path}: {exc}") from exc
    tables = data.get("models")
    if not isinstance(tables, dict) or not tables:
        raise CatalogError(f"the models file {path} has no [models.NAME] table")
    for name, table in tables.items():
        yield _spec(path, name, table, duration)


def _spec(path: Path, name: str, table: Any, duration: Callable[[str], float]) -> ModelSpec:
    where = f"{path}: [models.{name}]"
    if not isinstance(table, dict):
        raise CatalogError(f"{where} must be a table")
    unknown = set(table) - _FILE_KEYS
    if unknown:
        known = ", ".join(sorted(_FILE_KEYS))
        raise CatalogError(f"{where} has unknown keys: {', '.join(sorted(unknown))} (known: {known})")
    source = table.get("path")
    if not isinstance(source, str) or not source:
        raise CatalogError(f"{where} needs a path (a built-in model name or a .gguf file)")
    if source not in BUILTIN_MODELS:
        source = str((path.parent / source).expanduser())
    aliases = table.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        raise CatalogError(f"{where}: aliases must be a list of names")
    template = table.get("chat_template")
    keep_alive = table.get("keep_alive")
    try:
        return ModelSpec(
            name, source, tuple(aliases),
            max_model_len=_positive(table, "max_model_len"), max_num_seqs=_positive(table, "max_num_seqs"),
            chat_template_file=str(path.parent / template) if isinstance(template, str) else None,
            pinned=_flag(table, "pinned"), preload=_flag(table, "preload"),
            keep_alive=None if keep_alive is None else keep_alive_seconds(keep_alive, duration),
        )
    except ValueError as exc:
        raise CatalogError(f"{where}: {exc}") from exc


def keep_alive_seconds(value: Any, duration: Callable[[str], float]) -> float:
    """Ollama's keep-alive: a duration (``"10m"``, seconds as a number), 0 for at once, negative for never."""
    if isinstance(value, bool):
        raise ValueError(f"keep_alive must be a duration, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip().startswith("-"):
        seconds = -1.0
    elif isinstance(value, str) and value.strip() in ("0", "0s"):
        seconds = 0.0
    elif isinstance(value, str):
        seconds = float(duration(value))
    else:
        raise ValueError(f"keep_alive must be a duration such as \"10m\", got {value!r}")
    return float("inf") if seconds < 0 else seconds


def _positive(table: dict[str, Any], key: str) -> int | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{key} must be a positive integer, got {value!r}")
    return value


def _flag(table: dict[str, Any], key: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, got {value!r}")
    return value
