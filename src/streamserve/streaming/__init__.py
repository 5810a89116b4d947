"""Token ids -> OpenAI chunks: prompts, detokenization, stop strings, chunk shapes and SSE framing.

No HTTP and no llama.cpp here; chat and completions share one path and differ only in ``chunks``.
"""

from streamserve.streaming.events import Event, Finish, LogprobEntry, TextDelta, TopLogprob, Usage
from streamserve.streaming.generation import ChoiceRequest, Generation, GenerationRequest, start_generation

__all__ = [
    "ChoiceRequest",
    "Event",
    "Finish",
    "Generation",
    "GenerationRequest",
    "LogprobEntry",
    "TextDelta",
    "TopLogprob",
    "Usage",
    "start_generation",
]
