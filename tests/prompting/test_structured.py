"""plan_output: the grammar, prompt ending, tool parsing and opening for each way of asking for structure."""

from __future__ import annotations

from streamserve.engine import check_grammar
from streamserve.prompting.structured import FunctionTool, OutputSpec, ToolChoice, plan_output

WEATHER = FunctionTool("get_weather", "Weather in a city",
                       {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
TIME = FunctionTool("get_time", None, {"type": "object", "properties": {}})
TOOLS = (WEATHER, TIME)


def test_plain_text_has_no_grammar() -> None:
    plan = plan_output(OutputSpec())
    assert (plan.grammar, plan.prompt_suffix, plan.tool_prefix, plan.opening) == (None, "", None, "text")


def test_a_json_schema_is_a_grammar_on_a_text_turn() -> None:
    plan = plan_output(OutputSpec(json_schema={"type": "object"}))
    assert plan.grammar is not None and "%json" in plan.grammar
    assert (plan.prompt_suffix, plan.tool_prefix, plan.opening) == ("", None, "text")


def test_tool_choice_none_is_plain_text_even_with_tools() -> None:
    assert plan_output(OutputSpec(tools=TOOLS, tool_choice=ToolChoice("none"))).grammar is None


def test_auto_parses_from_the_start_and_defers_the_opening() -> None:
    plan = plan_output(OutputSpec(tools=TOOLS))
    assert plan.grammar is not None and "[lazy]" in plan.grammar
    assert (plan.prompt_suffix, plan.tool_prefix, plan.opening) == ("", "", "deferred")


def test_required_opens_the_first_call_in_the_prompt() -> None:
    plan = plan_output(OutputSpec(tools=TOOLS, tool_choice=ToolChoice("required")))
    assert plan.prompt_suffix == plan.tool_prefix == "<tool_call>\n"
    assert plan.opening == "tool_call"
    assert plan.grammar is not None and '"get_time"' in plan.grammar and '"get_weather"' in plan.grammar


def test_a_named_function_writes_its_head_and_constrains_only_its_arguments() -> None:
    plan = plan_output(OutputSpec(tools=TOOLS, tool_choice=ToolChoice("function", name="get_weather")))
    assert plan.prompt_suffix == '<tool_call>\n{"name": "get_weather", "arguments": '
    assert plan.tool_prefix == plan.prompt_suffix and plan.opening == "tool_call"
    assert plan.grammar is not None and '"city"' in plan.grammar and "get_time" not in plan.grammar


def test_allowed_tools_narrow_what_may_be_called() -> None:
    plan = plan_output(OutputSpec(tools=TOOLS, tool_choice=ToolChoice("required", allowed=("get_time",))))
    assert plan.grammar is not None and "get_time" in plan.grammar and "get_weather" not in plan.grammar


def test_every_plan_grammar_compiles() -> None:
    for choice in (ToolChoice("auto"), ToolChoice("required"), ToolChoice("function", name="get_time")):
        for parallel in (True, False):
            for schema in (None, {"type": "object", "properties": {"a": {"type": "integer"}}}):
                grammar = plan_output(OutputSpec(json_schema=schema, tools=TOOLS, tool_choice=choice,
                                                 parallel_tool_calls=parallel)).grammar
                assert grammar is not None
                check_grammar(grammar)
