"""The engine: continuous batching of many sequences through one llama.cpp model, in its own thread.

It knows token ids and sampling parameters only: no HTTP, pydantic or OpenAI names.
"""

from streamserve.engine.config import EngineConfig
from streamserve.engine.constraint import GrammarError, check_grammar
from streamserve.engine.engine import Engine, EngineStats
from streamserve.engine.errors import EngineError, EngineStoppedError, QueueFullError, StreamBacklogError
from streamserve.engine.events import FinishReason, TokenEvent
from streamserve.engine.sampling import SamplingParams
from streamserve.engine.stream import SequenceStream

__all__ = [
    "Engine",
    "EngineConfig",
    "EngineError",
    "EngineStats",
    "EngineStoppedError",
    "FinishReason",
    "GrammarError",
    "QueueFullError",
    "SamplingParams",
    "SequenceStream",
    "StreamBacklogError",
    "TokenEvent",
    "check_grammar",
]
