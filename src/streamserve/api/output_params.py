"""Output formats and function tools -> a neutral ``OutputSpec``: chat's fields, and the checks Responses shares.

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
from streamserve.prompting.grammars import check_schema
from streamserve.prompting.structured import FunctionTool, OutputSpec, ToolChoice

_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_CHOICES = ("none", "auto", "required")


def output_spec(body: ChatCompletionRequest) -> OutputSpec:
    """The requested output shape of a chat request, validated."""
    if body.functions is not None or body.function_call is not None:
        param = "functions" if body.functions is not None else "function_call"
        raise NotSupportedError(f"'{param}' is deprecated and not supported; use 'tools' and 'tool_choice'.",
                                param=param)
    tools = unique_tools([function_tool(i, tool, nested=True) for i, tool in enumerate(body.tools or ())])
    return OutputSpec(
        json_schema=_response_format(body.response_format),
        tools=tools,
        tool_choice=tool_choice(body.tool_choice, [t.name for t in tools], nested=True),
        parallel_tool_calls=body.parallel_tool_calls is not False,
    )


def _response_format(value: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if value is None:
        return None
    kind = value.get("type")
    if kind in ("text", "json_object"):
        return format_schema(kind, None, None, param="response_format")
    if kind != "json_schema":
        raise InvalidRequestError(
            f"Invalid value: {kind!r}. Supported values are: 'text', 'json_object', and 'json_schema'.",
            param="response_format.type", code="invalid_value")
    spec = value.get("json_schema")
    if not isinstance(spec, Mapping):
        raise InvalidRequestError("Missing required parameter: 'response_format.json_schema'.",
                                  param="response_format.json_schema", code="missing_required_parameter")
    return format_schema(kind, spec.get("name"), spec.get("schema", {}), param="response_format",
                         fields="response_format.json_schema")


def format_schema(kind: str, name: Any, schema: Any, *, param: str,
                  fields: str | None = None) -> Mapping[str, Any] | None:
    """The JSON schema an answer of this format must follow (None: free text), checked before anything runs.

    ``param`` names the format in a 400 (``response_format``, ``text.format``); ``fields`` is where its
    ``name`` and ``schema`` sit (chat nests them under ``json_schema``). ``kind`` must be a known type.
    """
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    fields = fields or param
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidRequestError(
            f"Invalid '{fields}.name': expected a string of at most 64 letters, digits, "
            "underscores or dashes.", param=f"{fields}.name", code="invalid_value")
    if not isinstance(schema, Mapping):
        raise InvalidRequestError(f"Invalid '{fields}.schema': expected an object.",
                                  param=f"{fields}.schema", code="invalid_type")
    check_schema(schema, param=param, what=f"{param} '{name}'")
    return schema


def function_tool(index: int, tool: Mapping[str, Any], *, nested: bool) -> FunctionTool:
    """One function tool, checked: chat nests it (``{"type", "function": {name, ...}}``), Responses does not.

    Any other tool ``type`` is a 400 naming ``tools[i].type``.
    """
    kind = tool.get("type")
    if kind != "function":
        raise NotSupportedError(f"tools[{index}] is a {kind!r} tool; only 'function' tools are supported.",
                                param=f"tools[{index}].type")
    where = f"tools[{index}].function" if nested else f"tools[{index}]"
    function = tool.get("function") if nested else tool
    if not isinstance(function, Mapping):
        raise InvalidRequestError(f"Missing required parameter: '{where}'.", param=where,
                                  code="missing_required_parameter")
    name = function.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidRequestError(
            f"Invalid '{where}.name': string does not match pattern. Expected a string of at "
            "most 64 characters that matches the pattern '^[a-zA-Z0-9_-]+$'.",
            param=f"{where}.name", code="invalid_value")
    description = function.get("description")
    param = f"{where}.parameters"
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


def unique_tools(tools: list[FunctionTool]) -> tuple[FunctionTool, ...]:
    """The tools, or a 400 naming ``tools`` when two functions share a name."""
    names = [t.name for t in tools]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidRequestError(f"Invalid 'tools': function names must be unique; {duplicates[0]!r} is repeated.",
                                  param="tools")
    return tuple(tools)


def tool_choice(value: str | Mapping[str, Any] | None, names: list[str], *, nested: bool) -> ToolChoice:
    """``tool_choice`` checked against the tools' ``names``; ``nested`` is chat's shape of a named choice
    (``{"type": "function", "function": {"name"}}``), else Responses' flat one (``{"type": "function", "name"}``).
    """
    if value is None:
        return ToolChoice("auto")
    if not names:
        if not nested and value in ("auto", "none"):
            return ToolChoice(value)  # type: ignore[arg-type]
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
        name = _name(value, nested)
        _known(name, names)
        return ToolChoice("function", name=name)
    if kind == "allowed_tools":
        allowed = (value.get("allowed_tools") or {}) if nested else value
        where = "tool_choice.allowed_tools" if nested else "tool_choice"
        mode = allowed.get("mode")
        if mode not in ("auto", "required"):
            raise InvalidRequestError(f"Invalid value: {mode!r}. Supported values are: 'auto' and 'required'.",
                                      param=f"{where}.mode", code="invalid_value")
        subset = [_name(t, nested) for t in allowed.get("tools") or ()]
        if not subset:
            raise InvalidRequestError(f"'{where}.tools' must name at least one tool.", param=f"{where}.tools")
        for name in subset:
            _known(name, names)
        return ToolChoice(mode, allowed=tuple(str(name) for name in subset))
    raise NotSupportedError(f"tool_choice of type {kind!r} is not supported; use 'function' or 'allowed_tools'.",
                            param="tool_choice.type")


def _name(choice: Mapping[str, Any], nested: bool) -> Any:
    return (choice.get("function") or {}).get("name") if nested else choice.get("name")


def _known(name: Any, names: list[str]) -> None:
    if name not in names:
        raise InvalidRequestError(
            f"Invalid value for 'tool_choice': no function named {name!r} was specified in the 'tools' parameter.",
            param="tool_choice")
