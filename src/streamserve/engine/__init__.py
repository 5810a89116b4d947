"""The engine: continuous batching of many sequences through one llama.cpp model, in its own thread.

``EngineClient`` is its event-loop side (submit, abort, streams, stats); ``EngineCore`` runs the steps on
the engine thread. It knows token ids and sampling parameters only: no HTTP, pydantic or OpenAI names.
"""

from streamserve.engine.client import EngineClient
from streamserve.engine.config import EngineConfig
from streamserve.engine.constraint import GrammarError, check_grammar
from streamserve.engine.core import EngineCore, EngineStats
from streamserve.engine.errors import EngineError, EngineStoppedError, QueueFullError, StreamBacklogError
from streamserve.engine.events import FinishReason, SequenceOutput, TokenEvent
from streamserve.engine.sampling import SamplingParams
from streamserve.engine.speculation import STEP_ROWS
from streamserve.engine.stream import SequenceStream

__all__ = [
    "STEP_ROWS",
    "EngineClient",
    "EngineConfig",
    "EngineCore",
    "EngineError",
    "EngineStats",
    "EngineStoppedError",
    "FinishReason",
    "GrammarError",
    "QueueFullError",
    "SamplingParams",
    "SequenceOutput",
    "SequenceStream",
    "StreamBacklogError",
    "TokenEvent",
    "check_grammar",
]
