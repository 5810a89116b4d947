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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from streamserve.engine import GrammarError, check_grammar
from streamserve.prompting.errors import RequestError

WHITESPACE = r"\x20|\x0A[\x20\x09]{0,24}"
"""What one JSON whitespace slot may hold (llguidance matches it at most once per slot)."""

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"

_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_VALUES = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
                  "additionalItems", "unevaluatedItems", "unevaluatedProperties")
_OPEN_KEYS = ("additionalProperties", "patternProperties", "unevaluatedProperties")


def map_subschemas(schema: Mapping[str, Any], fn: Callable[[Any, str], Any]) -> dict[str, Any]:
    """A shallow copy of ``schema`` with ``fn(subschema, keyword)`` applied to each of its direct subschemas.

    Only keywords whose values are schemas are visited, never data such as ``const``, ``enum`` or
    ``default``; a value that is not an object (a boolean schema, ``dependencies``' name lists) stays as is.
    """
    out = dict(schema)
    for key in _SCHEMA_MAPS:
        if isinstance(out.get(key), Mapping):
            out[key] = {name: fn(sub, key) for name, sub in out[key].items()}
    for key in _SCHEMA_LISTS + _SCHEMA_VALUES:
        value = out.get(key)
        if isinstance(value, list) and (key in _SCHEMA_LISTS or key == "items"):
            out[key] = [fn(sub, key) for sub in value]
        elif isinstance(value, Mapping) and key in _SCHEMA_VALUES:
            out[key] = fn(value, key)
    return out


def closed_objects(schema: Any, *, close: bool = True) -> Any:
    """A copy of ``schema`` where every object schema with ``properties`` and no word on other keys is closed.

    ``allOf`` branches are not closed themselves (each would forbid the others' properties), only what
    they contain.
    """
    if not isinstance(schema, Mapping):
        return schema
    out = map_subschemas({k: v for k, v in schema.items() if k != "x-guidance"},
                         lambda sub, key: closed_objects(sub, close=key != "allOf"))
    if close and "properties" in out and not any(key in out for key in _OPEN_KEYS):
        out["additionalProperties"] = False
    return out


def relocated(schema: Mapping[str, Any], pointer: str) -> dict[str, Any]:
    """A copy of ``schema`` to embed at JSON pointer ``pointer`` of another, its local ``$ref``s still meaning
    what their author meant.

    A tool's ``parameters`` or a pydantic model's schema keeps its ``$defs`` (or ``definitions``) at its
    own root and points at them with ``#/$defs/Name``; once the schema sits at ``/properties/arguments`` of
    a call, that pointer would be read from the call's root. Every ``#...`` reference is rebased onto
    ``pointer`` instead, so references between definitions, a recursive model (``#`` or
    ``#/$defs/Node`` inside ``Node``) and two tools that both define ``$defs/Item`` differently all
    resolve where they did. The root's ``$id`` and ``$schema`` are dropped (the embedded schema is no
    longer a resource of its own); below the root, a subschema with an ``$id`` of its own is a resource
    whose references are relative to it, and is left as it is.
    """
    def rebase(sub: Any, root: bool) -> Any:
        if not isinstance(sub, Mapping) or (not root and "$id" in sub):
            return sub
        out = map_subschemas(sub, lambda child, _: rebase(child, False))
        ref = out.get("$ref")
        if isinstance(ref, str) and (ref == "#" or ref.startswith("#/")):
            out["$ref"] = "#" + pointer + ref[1:]
        return out

    out: dict[str, Any] = rebase(schema, True)
    out.pop("$id", None)
    out.pop("$schema", None)
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


def call_schema(name: str, parameters: Mapping[str, Any], at: str = "") -> dict[str, Any]:
    """The JSON of one call: ``{"name": <name>, "arguments": <parameters>}``, name first (llguidance keeps order).

    ``at`` is the JSON pointer where the call schema itself will sit in the grammar's schema (``""``: its root).
    """
    return {
        "type": "object",
        "properties": {"name": {"const": name}, "arguments": relocated(parameters, f"{at}/properties/arguments")},
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
    if len(functions) == 1:
        call_json = _json(call_schema(*functions[0]))
    else:
        call_json = _json({"anyOf": [call_schema(name, parameters, f"/anyOf/{i}")
                                     for i, (name, parameters) in enumerate(functions)]})
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
