"""Responses' ``text.format``, ``tools``, ``tool_choice`` and ``parallel_tool_calls`` -> the neutral ``OutputSpec``.

The same checks as chat (``api/output_params.py``) over Responses' flat shapes: a format is
``{"type": "json_schema", "name", "schema", "strict"}`` (not nested under ``json_schema``), a tool is
``{"type": "function", "name", "description", "parameters", "strict"}``, a named choice is
``{"type": "function", "name"}``. Built-in tools (``web_search``, ``file_search``, ...) are a 400 naming
``tools[i].type``. The echo helpers give what every response object repeats of these fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamserve.api.errors import InvalidRequestError
from streamserve.api.output_params import format_schema, function_tool, tool_choice, unique_tools
from streamserve.api.protocol import ResponseCreateRequest
from streamserve.prompting.structured import OutputSpec

FORMATS = ("text", "json_schema", "json_object")


def output_spec(body: ResponseCreateRequest) -> OutputSpec:
    """The requested output of a Responses request, validated (400s name ``text.format``, ``tools[i]``...)."""
    tools = unique_tools([function_tool(i, tool, nested=False) for i, tool in enumerate(body.tools or ())])
    return OutputSpec(
        json_schema=_format_schema(_format(body)),
        tools=tools,
        tool_choice=tool_choice(body.tool_choice, [t.name for t in tools], nested=False),
        parallel_tool_calls=body.parallel_tool_calls is not False,
    )


def _format(body: ResponseCreateRequest) -> Mapping[str, Any] | None:
    fmt = (body.text or {}).get("format")
    if fmt is not None and not isinstance(fmt, Mapping):
        raise InvalidRequestError("text.format must be an object", param="text.format")
    return fmt


def _format_schema(fmt: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if fmt is None:
        return None
    kind = fmt.get("type")
    if kind not in FORMATS:
        raise InvalidRequestError(
            f"Invalid value: {kind!r}. Supported values are: 'text', 'json_schema', and 'json_object'.",
            param="text.format.type", code="invalid_value")
    return format_schema(kind, fmt.get("name"), fmt.get("schema", {}), param="text.format")


def echo_text(body: ResponseCreateRequest) -> dict[str, Any]:
    """The response's ``text``: the format as asked (``text`` by default) and the verbosity."""
    text = body.text or {}
    fmt = dict(_format(body) or {"type": "text"})
    if fmt.get("type") == "json_schema":
        fmt = {"type": "json_schema", "description": fmt.get("description"), "name": fmt.get("name"),
               "schema": fmt.get("schema", {}), "strict": bool(fmt.get("strict"))}
    return {"format": fmt, "verbosity": text.get("verbosity") or "medium"}


def echo_tools(body: ResponseCreateRequest) -> list[dict[str, Any]]:
    """The response's ``tools``: each function as OpenAI echoes it (``strict`` defaults to true in Responses)."""
    return [
        {"type": "function", "description": tool.get("description"), "name": tool.get("name"),
         "parameters": tool.get("parameters"), "strict": tool.get("strict", True)}
        for tool in body.tools or ()
    ]
