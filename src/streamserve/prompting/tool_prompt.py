"""Tools into the prompt, and earlier tool calls and results back into the conversation.

A chat template with its own tools support (it reads ``tools`` and speaks ``<tool_call>``, as Qwen's and
Hermes' do) gets the tools and the messages as they are, arguments parsed to objects as Hugging Face
templates expect. Any other template (SmolLM2's ChatML, Gemma's turns, the transcript) gets a system block
in the Hermes format that ``structured`` constrains: the tool signatures in ``<tools>``, then how to call
them. Assistant ``tool_calls`` become ``<tool_call>`` blocks in the assistant's text, and ``tool`` results
become a user turn of ``<tool_response>`` blocks, so every template can render them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from streamserve.prompting.grammars import CALL_CLOSE, CALL_OPEN
from streamserve.prompting.structured import FunctionTool, OutputSpec
from streamserve.prompting.templates import flatten_content


def tool_messages(messages: Sequence[Mapping[str, Any]], spec: OutputSpec, *,
                  native: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """The messages to render and the ``tools`` to hand the template (None: the template is not given any).

    With ``tool_choice: none`` the tools are left out of the prompt: the model cannot call them, and a
    small model shown them would imitate calls in its text. Earlier calls and results are still rendered.
    """
    if native:
        tools = [_tool_json(t) for t in spec.tools] if spec.calls_tools else None
        return [_parsed_arguments(m) for m in messages], tools
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if message.get("role") == "tool":
            response = f"<tool_response>\n{_text(message, index)}\n</tool_response>"
            if index > 0 and messages[index - 1].get("role") == "tool":
                out[-1]["content"] += "\n" + response  # results of one turn's calls share one user turn
            else:
                out.append({"role": "user", "content": response})
        elif message.get("role") == "assistant" and message.get("tool_calls"):
            out.append(_assistant_with_calls(message, index))
        else:
            out.append(dict(message))
    if spec.calls_tools:
        out = _with_system(out, tools_prompt(spec))
    return out, None


def tools_prompt(spec: OutputSpec) -> str:
    """The system text that lists the tools and shows the call format."""
    how_many = ("Call one function, and only one." if not spec.parallel_tool_calls
                else "You may call one or more functions to assist with the user query.")
    signatures = "\n".join(json.dumps(_tool_json(t), ensure_ascii=False) for t in spec.tools)
    return (
        "You are a function calling AI model. You are provided with function signatures within <tools></tools> "
        f"XML tags. {how_many} Don't make assumptions about what values to plug into functions. "
        f"Here are the available tools:\n<tools>\n{signatures}\n</tools>\n"
        "For each function call return a json object with function name and arguments within "
        f"{CALL_OPEN}{CALL_CLOSE} XML tags:\n"
        f'{CALL_OPEN}\n{{"name": <function-name>, "arguments": <args-json-object>}}\n{CALL_CLOSE}'
    )


def render_call(name: str, arguments: Any) -> str:
    """One call as the model writes it; arguments that are JSON text are written as that JSON."""
    call = json.dumps({"name": name, "arguments": _loads(arguments)}, ensure_ascii=False)
    return f"{CALL_OPEN}\n{call}\n{CALL_CLOSE}"


def _tool_json(tool: FunctionTool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = dict(tool.parameters)
    return {"type": "function", "function": function}


def _assistant_with_calls(message: Mapping[str, Any], index: int) -> dict[str, Any]:
    calls = []
    for call in message["tool_calls"]:
        function = call.get("function") or {}
        calls.append(render_call(str(function.get("name", "")), function.get("arguments", "{}")))
    text = _text(message, index).strip()
    rest = {key: value for key, value in message.items() if key != "tool_calls"}
    return {**rest, "content": "\n".join([text, *calls] if text else calls)}


def _parsed_arguments(message: Mapping[str, Any]) -> dict[str, Any]:
    if not message.get("tool_calls"):
        return dict(message)
    calls = []
    for call in message["tool_calls"]:
        function = dict(call.get("function") or {})
        function["arguments"] = _loads(function.get("arguments", "{}"))
        calls.append({**call, "function": function})
    return {**message, "tool_calls": calls}


def _with_system(messages: list[dict[str, Any]], block: str) -> list[dict[str, Any]]:
    if messages and messages[0].get("role") in ("system", "developer"):
        first = messages[0]
        text = _text(first, 0)
        return [{**first, "content": f"{text}\n\n{block}" if text else block}, *messages[1:]]
    return [{"role": "system", "content": block}, *messages]


def _text(message: Mapping[str, Any], index: int) -> str:
    return flatten_content(message.get("content"), param=f"messages[{index}].content")


def _loads(arguments: Any) -> Any:
    if not isinstance(arguments, str):
        return arguments
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments
