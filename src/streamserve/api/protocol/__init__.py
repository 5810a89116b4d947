"""The OpenAI wire format as pydantic models: requests, responses, chunks, usage, errors.

Only models live here, one module per endpoint family; the request -> generation conversion is in
``api/params.py`` and the response dicts are built by ``formats/completions.py``. Response models
document the schema (``/docs``) and validate those dicts in tests. Their wire form keeps exactly
the keys that were set: ``Model.model_validate(d).model_dump(exclude_unset=True) == d``, which is
how a chat delta can be ``{}`` while the chunk around it carries explicit nulls.
"""

from streamserve.api.protocol.base import (
    ErrorBody,
    ErrorResponse,
    FinishReason,
    LogitBias,
    OpenAIBaseModel,
    Penalty,
    PromptTokensDetails,
    StopList,
    StreamOptions,
    Usage,
)
from streamserve.api.protocol.chat import (
    ChatCompletion,
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatCompletionChunkChoice,
    ChatCompletionMessage,
    ChatCompletionMessageToolCall,
    ChatCompletionRequest,
    ChatCompletionTokenLogprob,
    ChatDelta,
    ChatLogprobs,
    ChatMessage,
    ChoiceDeltaFunctionCall,
    ChoiceDeltaToolCall,
    ContentPart,
    FunctionCall,
    GenericContentPart,
    TextContentPart,
    TopLogprob,
)
from streamserve.api.protocol.completions import (
    Completion,
    CompletionChoice,
    CompletionChunk,
    CompletionChunkChoice,
    CompletionLogprobs,
    CompletionRequest,
)
from streamserve.api.protocol.models import (
    ModelAction,
    ModelCard,
    ModelList,
)
from streamserve.api.protocol.moderations import (
    ModerationModePolicy,
    ModerationOptions,
    ModerationPolicy,
    ModerationRequest,
    ModerationResponse,
    ModerationResultBody,
    TextInput,
)
from streamserve.api.protocol.responses import (
    InputItemList,
    OutputMessage,
    ResponseCreateRequest,
    ResponseDeleted,
    ResponseObject,
    ResponseUsage,
)

__all__ = [
    "ChatCompletion",
    "ChatCompletionChoice",
    "ChatCompletionChunk",
    "ChatCompletionChunkChoice",
    "ChatCompletionMessage",
    "ChatCompletionMessageToolCall",
    "ChatCompletionRequest",
    "ChatCompletionTokenLogprob",
    "ChatDelta",
    "ChatLogprobs",
    "ChatMessage",
    "ChoiceDeltaFunctionCall",
    "ChoiceDeltaToolCall",
    "Completion",
    "CompletionChoice",
    "CompletionChunk",
    "CompletionChunkChoice",
    "CompletionLogprobs",
    "CompletionRequest",
    "ContentPart",
    "ErrorBody",
    "ErrorResponse",
    "FinishReason",
    "FunctionCall",
    "GenericContentPart",
    "InputItemList",
    "LogitBias",
    "ModelAction",
    "ModelCard",
    "ModelList",
    "ModerationModePolicy",
    "ModerationOptions",
    "ModerationPolicy",
    "ModerationRequest",
    "ModerationResponse",
    "ModerationResultBody",
    "OpenAIBaseModel",
    "OutputMessage",
    "Penalty",
    "PromptTokensDetails",
    "ResponseCreateRequest",
    "ResponseDeleted",
    "ResponseObject",
    "ResponseUsage",
    "StopList",
    "StreamOptions",
    "TextContentPart",
    "TextInput",
    "TopLogprob",
    "Usage",
]
