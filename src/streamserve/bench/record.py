"""What one benchmark request is sent with and what is measured about it.

``RequestOptions`` says how every request of a run is sent, ``ReadPlan`` how one stream is read,
and ``RequestRecord`` holds everything measured about one request, failed or not: the client
(``client.py``) fills it, the summaries, reports and plots read it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .prompts import Endpoint
from .sse import SSEEvent

TokenSource = Literal["usage", "chunks", "none"]


class RequestFailedError(Exception):
    """A request failed in a way the server or the wire made plain (HTTP status, early end)."""


@dataclass
class RequestRecord:
    """Everything measured about one request. Times are seconds.

    ``start`` is relative to the caller's epoch; ``ttft``, ``last_token``, ``e2e`` and every entry of
    ``chunk_times`` are relative to ``start``. ``chunk_times`` has one entry per chunk that carried
    content (role-only and finish chunks are not counted). ``e2e`` is when the answer was complete
    (``[DONE]`` for a stream, the full body otherwise), or when the request failed.
    ``cached_tokens`` is the usage's ``prompt_tokens_details.cached_tokens`` (prompt tokens the server
    took from its prompt cache), None when the server did not say.
    ``output_tokens`` comes from the server's usage when it sent one (``token_source="usage"``),
    otherwise from the counted content chunks (``"chunks"``); ``"none"`` means no count was possible.
    """

    stream: bool
    prompt: str = ""
    ok: bool = False
    error: str | None = None
    status: int | None = None
    start: float = 0.0
    ttft: float | None = None
    last_token: float | None = None
    e2e: float | None = None
    chunk_times: list[float] = field(default_factory=list)
    text: str = ""
    output_tokens: int = 0
    token_source: TokenSource = "none"
    content_chunks: int = 0
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    usage_completion_tokens: int | None = None
    finish_reason: str | None = None
    saw_done: bool = False
    request_id: str | None = None
    content_type: str | None = None
    error_body: Any = None
    """The parsed JSON body of a failed (non-2xx) response, when it was JSON."""
    events: list[SSEEvent] = field(default_factory=list)
    """Every event of the stream, ``[DONE]`` and anything after it included (``ReadPlan.keep_events``)."""
    comments: int = 0
    hung_up: bool = False
    """The client closed the connection on purpose (``ReadPlan``); such a record is not ``ok``."""
    hung_up_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field, raw timings included."""
        return asdict(self)


@dataclass(frozen=True)
class RequestOptions:
    """How requests are sent: endpoint, sampling defaults, usage chunk, and the per-request timeout."""

    endpoint: Endpoint = "chat"
    max_tokens: int | None = 128
    temperature: float | None = 0.0
    include_usage: bool = True
    timeout: float = 120.0


@dataclass(frozen=True)
class ReadPlan:
    """How one stream is read: keep its events, pause after each event, or hang up on purpose.

    ``hangup_after_events`` closes the connection once that many events have arrived (0: as soon
    as the response headers are in); ``hangup_after_s`` closes it that many seconds after sending,
    whatever has arrived by then. A stream that ends first is simply complete.
    """

    keep_events: bool = False
    pause_s: float = 0.0
    hangup_after_events: int | None = None
    hangup_after_s: float | None = None

