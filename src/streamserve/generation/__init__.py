"""Generation: one request's engine token events -> neutral events (text, tool calls, finishes, usage).

Each choice runs detokenizer -> stop matcher -> tool-call parser -> moderation gate; the choices are merged.
No wire format is known here: ``formats`` renders the events.
"""

from streamserve.generation.events import Event, Finish, LogprobEntry, TextDelta, TopLogprob, Usage
from streamserve.generation.generation import ChoiceRequest, Generation, GenerationRequest, start_generation

__all__ = ["ChoiceRequest", "Event", "Finish", "Generation", "GenerationRequest", "LogprobEntry", "TextDelta",
           "TopLogprob", "Usage", "start_generation"]
