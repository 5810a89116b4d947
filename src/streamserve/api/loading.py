"""ModelLoader: what a loaded model is to the API (engine, chat template, limits, moderation) and how it is
built, measured and freed; the registry (``models.registry``) decides when."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

from streamserve.api.moderation import ModerationService, build_moderation
from streamserve.api.params import Limits, control_stop_ids
from streamserve.config import ServerConfig
from streamserve.engine import STEP_ROWS, EngineClient, EngineConfig
from streamserve.models import ModelSpec, estimate, resident_memory, resolve_model
from streamserve.models.memory import give_back
from streamserve.moderation import ModerationObserver
from streamserve.prompting.templates import ChatTemplate, choose_template

_OUTPUT_ROWS_PER_LANE = 2
"""Rows of logits the memory estimate counts per lane (a decode row, and one of a prompt's last token)."""


@dataclass
class LoadedModel:
    """A model ready to serve: its engine, chat template, per-request limits and moderation."""

    spec: ModelSpec
    engine: EngineClient
    template: ChatTemplate
    limits: Limits
    fingerprint: str
    stop_ids: frozenset[int]
    moderation: ModerationService | None = None

    @property
    def config(self) -> EngineConfig:
        """The engine settings it runs with (the server's, with the model's own overrides)."""
        return self.engine.config


class ModelLoader:
    """Builds ``LoadedModel``s for the registry: estimates before, measures after, frees when unloaded."""

    def __init__(self, config: ServerConfig, loop: asyncio.AbstractEventLoop,
                 observer: ModerationObserver | None = None) -> None:
        self.config = config
        self.loop = loop
        self.observer = observer

    def engine_config(self, spec: ModelSpec) -> EngineConfig:
        """The server's engine settings with the model's own context and lanes."""
        base = self.config.engine
        return dataclasses.replace(base, max_model_len=spec.max_model_len or base.max_model_len,
                                   max_num_seqs=spec.max_num_seqs or base.max_num_seqs)

    def estimate(self, spec: ModelSpec) -> int:
        """Bytes before loading: weights as the file holds them, the whole KV cache, the logits rows (a step
        verifying a draft computes more rows than lanes when lanes are few)."""
        engine = self.engine_config(spec)
        lanes = engine.max_num_seqs
        rows = max(_OUTPUT_ROWS_PER_LANE * lanes, 0 if engine.deterministic else STEP_ROWS)
        return estimate(spec.source, engine.max_model_len * lanes, rows)

    def load(self, spec: ModelSpec) -> tuple[LoadedModel, int]:
        """Load and start the model; return it with the resident memory its load added (blocking)."""
        before = resident_memory()
        loaded = self._build(spec)
        return loaded, max(0, resident_memory() - before)

    def in_flight(self, loaded: LoadedModel) -> int:
        """Sequences the model's engine is running or queueing."""
        return loaded.engine.in_flight

    def unload(self, loaded: LoadedModel) -> None:
        """Stop the engine (open streams end with an error event), the moderation, and free the model."""
        loaded.engine.shutdown()
        if loaded.moderation is not None:
            loaded.moderation.close()
        loaded.engine.close()
        give_back()

    def _build(self, spec: ModelSpec) -> LoadedModel:
        _, path = resolve_model(spec.source)
        engine_config = self.engine_config(spec)
        engine = EngineClient.load(path, engine_config)
        model = engine.model
        try:
            override = Path(spec.chat_template_file) if spec.chat_template_file else None
            template = choose_template(
                override_text=override.read_text() if override else None,
                override_name=str(override) if override else None,
                gguf_template=model.chat_template,
                architecture=model.architecture,
            )
            engine.start()
            moderation = build_moderation(self.config, engine, template, path, self.loop, self.observer)
        except Exception:
            engine.close()
            raise
        cfg = self.config
        limits = Limits(
            max_model_len=engine_config.max_model_len,
            n_vocab=model.n_vocab,
            max_token_bytes=model.max_token_bytes,
            max_n=cfg.max_n,
            max_stop_strings=cfg.max_stop_strings,
            max_tokens_default=cfg.max_tokens_default,
            max_sequences=cfg.sequences_per_request(engine_config),
        )
        fingerprint = "fp_" + hashlib.sha256(f"{path.name}:{path.stat().st_size}".encode()).hexdigest()[:10]
        return LoadedModel(spec, engine, template, limits, fingerprint, control_stop_ids(template.stop, model),
                           moderation)
