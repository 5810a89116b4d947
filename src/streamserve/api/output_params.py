"""Chat's ``response_format``, ``tools``, ``tool_choice`` and ``parallel_tool_calls`` -> a neutral ``OutputSpec``.

Every refusal is a 400 in OpenAI's words with OpenAI's ``param``: ``response_format`` for a schema llguidance
cannot enforce, ``tools[i].function.parameters`` (code ``invalid_function_parameters``) for a function's,
``tool_choice`` for a choice that names no tool or comes without tools. Schemas are checked here, before
anything is queued, so a bad one never fails mid-stream.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from streamserve.api.errors import InvalidRequestError, NotSupportedError
from streamserve.api.protocol import ChatCompletionRequest
from streamserve.streaming.grammars import check_schema
from streamserve.streaming.structured import FunctionTool, OutputSpec, ToolChoice

_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_CHOICES = ("none", "auto", "required")


def output_spec(body: ChatCompletionRequest) -> OutputSpec:
    """The requested output shape of a chat request, validated."""
    if body.functions is not None or body.function_call is not None:
        param = "functions" if body.functions is not None else "function_call"
        raise NotSupportedError(f"'{param}' is deprecated and not supported; use 'tools' and 'tool_choice'.",
                                param=param)
    tools = tuple(_tool(i, tool) for i, tool in enumerate(body.tools or ()))
    names = [t.name for t in tools]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidRequestError(f"Invalid 'tools': function names must be unique; {duplicates[0]!r} is repeated.",
                                  param="tools")
    return OutputSpec(
        json_schema=_response_format(body.response_format),
        tools=tools,
        tool_choice=_tool_choice(body.tool_choice, names),
        parallel_tool_calls=body.parallel_tool_calls is not False,
    )


def _response_format(value: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if value is None:
        return None
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind != "json_schema":
        raise InvalidRequestError(
            f"Invalid value: {kind!r}. Supported values are: 'text', 'json_object', and 'json_schema'.",
            param="response_format.type", code="invalid_value")
    spec = value.get("json_schema")
    if not isinstance(spec, Mapping):
        raise InvalidRequestError("Missing required parameter: 'response_format.json_schema'.",
                                  param="response_format.json_schema", code="missing_required_parameter")
    name = spec.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidRequestError(
            "Invalid 'response_format.json_schema.name': expected a string of at most 64 letters, digits, "
            "underscores or dashes.", param="response_format.json_schema.name", code="invalid_value")
    schema = spec.get("schema", {})
    if not isinstance(schema, Mapping):
        raise InvalidRequestError("Invalid 'response_format.json_schema.schema': expected an object.",
                                  param="response_format.json_schema.schema", code="invalid_type")
    check_schema(schema, param="response_format", what=f"response_format '{name}'")
    return schema


def _tool(index: int, tool: Mapping[str, Any]) -> FunctionTool:
    kind = tool.get("type")
    if kind != "function":
        raise NotSupportedError(f"tools[{index}] is a {kind!r} tool; only 'function' tools are supported.",
                                param=f"tools[{index}].type")
    function = tool.get("function")
    if not isinstance(function, Mapping):
        raise InvalidRequestError(f"Missing required parameter: 'tools[{index}].function'.",
                                  param=f"tools[{index}].function", code="missing_required_parameter")
    name = function.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidRequestError(
            f"Invalid 'tools[{index}].function.name': string does not match pattern. Expected a string of at "
            "most 64 characters that matches the pattern '^[a-zA-Z0-9_-]+$'.",
            param=f"tools[{index}].function.name", code="invalid_value")
    description = function.get("description")
    param = f"tools[{index}].function.parameters"
    parameters = function.get("parameters")
    if parameters is None:
        parameters = {"type": "object", "properties": {}}
    if not isinstance(parameters, Mapping):
        raise InvalidRequestError(f"Invalid schema for function '{name}': parameters must be a JSON Schema object.",
                                  param=param, code="invalid_function_parameters")
    if parameters.get("type", "object") != "object":
        raise InvalidRequestError(
            f"Invalid schema for function '{name}': schema must be a JSON Schema of 'type: \"object\"', got "
            f"'type: \"{parameters.get('type')}\"'.", param=param, code="invalid_function_parameters")
    parameters = {"type": "object", **parameters}
    check_schema(parameters, param=param, what=f"function '{name}'", code="invalid_function_parameters")
    strict = function.get("strict")
    return FunctionTool(name, description if isinstance(description, str) else None, parameters,
                        strict if isinstance(strict, bool) else None)


def _tool_choice(value: str | Mapping[str, Any] | None, names: list[str]) -> ToolChoice:
    if value is None:
        return ToolChoice("auto")
    if not names:
        raise InvalidRequestError(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            param="tool_choice")
    if isinstance(value, str):
        if value not in _CHOICES:
            raise InvalidRequestError(
                f"Invalid value: {value!r}. Supported values are: 'none', 'auto', and 'required'.",
                param="tool_choice", code="invalid_value")
        return ToolChoice(value)  # type: ignore[arg-type]
    kind = value.get("type")
    if kind == "function":
        name = (value.get("function") or {}).get("name")
        _known(name, names)
        return ToolChoice("function", name=name)
    if kind == "allowed_tools":
        allowed = value.get("allowed_tools") or {}
        mode = allowed.get("mode")
        if mode not in ("auto", "required"):
            raise InvalidRequestError(f"Invalid value: {mode!r}. Supported values are: 'auto' and 'required'.",
                                      param="tool_choice.allowed_tools.mode", code="invalid_value")
        subset = [(t.get("function") or {}).get("name") for t in allowed.get("tools") or ()]
        if not subset:
            raise InvalidRequestError("'tool_choice.allowed_tools.tools' must name at least one tool.",
                                      param="tool_choice.allowed_tools.tools")
        for name in subset:
            _known(name, names)
        return ToolChoice(mode, allowed=tuple(str(name) for name in subset))
    raise NotSupportedError(f"tool_choice of type {kind!r} is not supported; use 'function' or 'allowed_tools'.",
                            param="tool_choice.type")


def _known(name: Any, names: list[str]) -> None:
    if name not in names:
        raise InvalidRequestError(
            f"Invalid value for 'tool_choice': no function named {name!r} was specified in the 'tools' parameter.",
            param="tool_choice")
