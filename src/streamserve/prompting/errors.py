"""Errors prompting and generation raise about a request; the API layer renders them as 400s."""

from __future__ import annotations


class RequestError(ValueError):
    """A request the server cannot serve as asked: bad values, templates that refuse it, limits.

    ``param`` names the offending request field (OpenAI's ``param``), ``code`` is an optional
    machine-readable code such as ``context_length_exceeded``.
    """

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
