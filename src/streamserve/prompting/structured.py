"""What shape the output must take, in neutral terms, and the plan that makes it so.

An API layer (chat completions, responses) translates its own fields into an ``OutputSpec``: a JSON
schema for the answer, function tools and how they may be called. ``plan_output`` turns it into what
generation needs: the grammar the engine enforces, the text that ends the prompt, whether the output is
parsed for tool calls, and how the first delta of a choice opens.

Tool calls use one format, Hermes-style ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>``:
``required`` is constrained from the first token (``<tool_call>\\n`` already ends the prompt), a named
function from its arguments on (the call's head ends the prompt), ``auto`` lets the model write text and
constrains a call from its ``<tool_call>`` marker on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from streamserve.engine import GrammarError, check_grammar
from streamserve.prompting.errors import RequestError
from streamserve.prompting.grammars import CALL_OPEN, calls_grammar, json_grammar

Opening = Literal["text", "tool_call", "deferred"]
"""How a choice's stream opens: as text, as a tool turn, or decided by its first delta (``auto``)."""


@dataclass(frozen=True, slots=True)
class FunctionTool:
    """A function the model may call: its name, description and the JSON schema of its arguments (an object)."""

    name: str
    description: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """How the tools may be used: not at all, at the model's choice, at least once, or one named function.

    ``allowed`` narrows the callable tools to a subset of names (the others stay in the prompt).
    """

    mode: Literal["none", "auto", "required", "function"] = "auto"
    name: str | None = None
    allowed: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """The requested output: ``json_schema`` for an answer in JSON, and/or tools the model may call."""

    json_schema: Mapping[str, Any] | None = None
    tools: tuple[FunctionTool, ...] = ()
    tool_choice: ToolChoice = ToolChoice()
    parallel_tool_calls: bool = True

    @property
    def calls_tools(self) -> bool:
        """Whether the model may call tools at all (there are tools and the choice is not ``none``)."""
        return bool(self.tools) and self.tool_choice.mode != "none"


@dataclass(frozen=True, slots=True)
class OutputPlan:
    """What generation needs for an ``OutputSpec``.

    ``grammar`` (None: free text) goes to the engine; ``prompt_suffix`` ends the prompt after the
    generation prompt; ``tool_prefix`` is None for plain output, else the output is parsed for tool
    calls as if it followed that text (the suffix); ``opening`` says how each choice's stream opens.
    """

    grammar: str | None = None
    prompt_suffix: str = ""
    tool_prefix: str | None = None
    opening: Opening = "text"


def plan_output(spec: OutputSpec) -> OutputPlan:
    """The plan for ``spec``; the schemas in it must have passed ``grammars.check_schema`` already."""
    if not spec.calls_tools:
        return OutputPlan(json_grammar(spec.json_schema) if spec.json_schema is not None else None)
    choice = spec.tool_choice
    callable_tools = [t for t in spec.tools if choice.allowed is None or t.name in choice.allowed]
    if choice.mode == "function":
        tool = next(t for t in callable_tools if t.name == choice.name)
        head = f'{CALL_OPEN}\n{{"name": {json.dumps(tool.name)}, "arguments": '
        return OutputPlan(_checked(json_grammar(tool.parameters)), head, head, "tool_call")
    functions = [(t.name, t.parameters) for t in callable_tools]
    parallel = spec.parallel_tool_calls
    if choice.mode == "required":
        head = f"{CALL_OPEN}\n"
        return OutputPlan(_checked(calls_grammar(functions, parallel=parallel, opened=True)), head, head, "tool_call")
    grammar = calls_grammar(functions, parallel=parallel, opened=False, answer=spec.json_schema, optional=True)
    return OutputPlan(_checked(grammar), "", "", "deferred")


def _checked(grammar: str) -> str:
    try:
        check_grammar(grammar)
    except GrammarError as exc:
        raise RequestError(f"The tools cannot be enforced together: {exc}", param="tools") from None
    return grammar
