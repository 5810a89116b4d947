"""Prompting: messages -> the prompt's token ids (chat templates, tool prompts), and the output's shape -> a grammar."""

from streamserve.prompting.errors import RequestError
from streamserve.prompting.structured import FunctionTool, OutputPlan, OutputSpec, ToolChoice, plan_output
from streamserve.prompting.templates import ChatTemplate
from streamserve.prompting.tokenizer import Tokenizer

__all__ = [
           "ChatTemplate",
           "FunctionTool",
           "OutputPlan",
           "OutputSpec",
           "RequestError",
           "Tokenizer",
           "ToolChoice",
           "plan_output",
]
