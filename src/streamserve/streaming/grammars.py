"""Output structures as llguidance grammar text: a JSON schema, tool calls, or either after free text.

The engine receives these strings and knows nothing of what they mean. Every JSON value gets bounded
whitespace (at each place JSON allows it: one space, or one newline and an indent of at most 24), so a
model cannot stream whitespace until its token limit. Objects that list ``properties`` and say nothing
of other keys are closed (``additionalProperties: false``): the output stays valid against the schema,
and small models stop inventing keys.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from streamserve.engine import GrammarError, check_grammar
from streamserve.streaming.errors import RequestError

WHITESPACE = r"\x20|\x0A[\x20\x09]{0,24}"
"""What one JSON whitespace slot may hold (llguidance matches it at most once per slot)."""

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"

_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "prefixItems")
_SCHEMA_VALUES = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
                  "additionalItems", "unevaluatedItems", "unevaluatedProperties")
_OPEN_KEYS = ("additionalProperties", "patternProperties", "unevaluatedProperties")


def closed_objects(schema: Any, *, close: bool = True) -> Any:
    """A copy of ``schema`` where every object schema with ``properties`` and no word on other keys is closed.

    ``allOf`` branches are not closed themselves (each would forbid the others' properties), only what
    they contain.
    """
    if not isinstance(schema, Mapping):
        return schema
    out = {key: value for key, value in schema.items() if key != "x-guidance"}
    for key in _SCHEMA_MAPS:
        if isinstance(out.get(key), Mapping):
            out[key] = {name: closed_objects(sub) for name, sub in out[key].items()}
    for key in _SCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [closed_objects(sub) for sub in out[key]]
    if isinstance(out.get("allOf"), list):
        out["allOf"] = [closed_objects(sub, close=False) for sub in out["allOf"]]
    for key in _SCHEMA_VALUES:
        value = out.get(key)
        if isinstance(value, list):
            out[key] = [closed_objects(sub) for sub in value]
        elif isinstance(value, Mapping):
            out[key] = closed_objects(value)
    if close and "properties" in out and not any(key in out for key in _OPEN_KEYS):
        out["additionalProperties"] = False
    return out


def _json(schema: Mapping[str, Any]) -> str:
    """``%json {...}`` for ``schema``, closed and with bounded whitespace."""
    return "%json " + json.dumps({**closed_objects(schema), "x-guidance": {"whitespace_pattern": WHITESPACE}})


def json_grammar(schema: Mapping[str, Any]) -> str:
    """A grammar for one JSON value valid against ``schema``, with nothing before or after it."""
    return f"%llguidance {{}}\nstart: {_json(schema)}\n"


def check_schema(schema: Mapping[str, Any], *, param: str, what: str, code: str | None = None) -> None:
    """Raise a 400 ``RequestError`` naming ``param`` if llguidance cannot enforce ``schema``."""
    try:
        check_grammar(json_grammar(schema))
    except GrammarError as exc:
        raise RequestError(f"Invalid schema for {what}: {_reason(str(exc))}", param=param, code=code) from None


def _reason(message: str) -> str:
    """llguidance's first line without its position in our grammar text (which would echo the whole schema)."""
    first = message.strip().splitlines()[0] if message.strip() else "the schema cannot be enforced"
    reason = _POSITION.sub("", first).removeprefix("failed to compile JSON schema: ").strip()
    remote = _REMOTE_REF.search(reason)
    if remote:
        return f"'$ref' to {remote.group(1)} cannot be resolved: only local references ('#/...') are supported"
    return reason


_POSITION = re.compile(r"^at \d+\(\d+\): ")
_REMOTE_REF = re.compile(r"Resource ('[^']*') is not present in a registry")


def call_schema(name: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON of one call: ``{"name": <name>, "arguments": <parameters>}``, name first (llguidance keeps order)."""
    return {
        "type": "object",
        "properties": {"name": {"const": name}, "arguments": parameters},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def calls_grammar(functions: Sequence[tuple[str, Mapping[str, Any]]], *, parallel: bool, opened: bool,
                  answer: Mapping[str, Any] | None = None, optional: bool = False) -> str:
    """Tool calls, each ``<tool_call>\\n{json}\\n</tool_call>``, one per line; one call only unless ``parallel``.

    ``opened``: the first call's ``<tool_call>\\n`` is already in the prompt. ``optional`` (``auto``):
    the model may answer instead, in free text (a call may then start anywhere, lazily, at
    ``<tool_call>``) or, with an ``answer`` schema, in JSON valid against it.
    """
    schemas = [call_schema(name, parameters) for name, parameters in functions]
    call_json = _json(schemas[0] if len(schemas) == 1 else {"anyOf": schemas})
    more = ' ("\\n" call)*' if parallel else ""
    lines = ["%llguidance {}", f'body: {call_json} "\\n{CALL_CLOSE}"', f'call: "{CALL_OPEN}\\n" body']
    if not optional:
        lines.insert(1, f"start: {'body' if opened else 'call'}{more}")
    elif answer is None:
        lines[1:1] = [
            "start: TEXT | calls",
            "TEXT: /(.|\\n)*/",
            f'trigger[lazy]: TEXT "{CALL_OPEN}"',
            f'calls: trigger "\\n" body{more}',
        ]
    else:
        lines[1:1] = [f"start: answer | call{more}", f"answer: {_json(answer)}"]
    return "\n".join(lines) + "\n"
