"""Wire formats: one module per format rendering generation's neutral events, and SSE framing in one place."""

from streamserve.formats import sse
from streamserve.formats.completions import ChunkFormatter, CompletionBuilder, CompletionMeta, Shape
from streamserve.formats.responses import ResponseFormatter, ResponseMeta

__all__ = ["ChunkFormatter", "CompletionBuilder", "CompletionMeta", "ResponseFormatter", "ResponseMeta", "Shape",
           "sse"]
