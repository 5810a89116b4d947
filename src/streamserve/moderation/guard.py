"""The guard-model policy: any GGUF the user gives, run by our own engine, prompted in the Llama Guard 3 format.

The verdict is read in two steps, as guard deployments constrain it: the first output token is
limited to the first tokens of "safe" and "unsafe" (an equal logit bias on both, so their odds
are the model's own), which gives the first line and the score P(unsafe). After ``unsafe`` the
model writes the second line, which is parsed strictly: a comma-separated list of Llama Guard
codes (``S1,S10``) and nothing else, or the check fails with ``GuardVerdictError``, never a silent
pass. Every text is judged as one ``User`` message.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Sequence
from types import MappingProxyType

from streamserve.engine import EngineClient, EngineError, FinishReason, SamplingParams, SequenceStream, TokenEvent
from streamserve.moderation.categories import ModerationResult
from streamserve.moderation.policy import ModerationError, WindowedPolicy

GUARD_CATEGORIES = MappingProxyType({
    "S1": ("Violent Crimes", ("violence", "illicit/violent")),
    "S2": ("Non-Violent Crimes", ("illicit",)),
    "S3": ("Sex-Related Crimes", ("sexual", "illicit")),
    "S4": ("Child Sexual Exploitation", ("sexual/minors",)),
    "S5": ("Defamation", ("harassment",)),
    "S6": ("Specialized Advice", ("illicit",)),
    "S7": ("Privacy", ("harassment",)),
    "S8": ("Intellectual Property", ("illicit",)),
    "S9": ("Indiscriminate Weapons", ("illicit/violent",)),
    "S10": ("Hate", ("hate",)),
    "S11": ("Suicide & Self-Harm", ("self-harm",)),
    "S12": ("Sexual Content", ("sexual",)),
    "S13": ("Elections", ("illicit",)),
    "S14": ("Code Interpreter Abuse", ("illicit",)),
})
"""Llama Guard 3's hazard categories, each with the OpenAI categories it is reported as."""

_CODES = re.compile(r"S\d{1,2}(?:,\s?S\d{1,2})*")
MAX_VERDICT_TOKENS = 16
CHECK_TIMEOUT_S = 120.0


class GuardVerdictError(ModerationError):
    """The guard model's output is not a Llama Guard verdict."""


def guard_task(text: str, role: str = "User") -> str:
    """The Llama Guard 3 user turn asking for a verdict on ``text`` as the conversation's one message."""
    categories = "\n".join(f"{code}: {name}." for code, (name, _) in GUARD_CATEGORIES.items())
    return (
        f"Task: Check if there is unsafe content in '{role}' messages in conversations according our safety "
        "policy with the below categories.\n\n"
        f"<BEGIN UNSAFE CONTENT CATEGORIES>\n{categories}\n<END UNSAFE CONTENT CATEGORIES>\n\n"
        f"<BEGIN CONVERSATION>\n\n{role}: {text}\n\n<END CONVERSATION>\n\n"
        f"Provide your safety assessment for ONLY THE LAST {role} message in the above conversation:\n"
        " - First line must read 'safe' or 'unsafe'.\n"
        " - If unsafe, a second line must include a comma-separated list of violated categories."
    )


def parse_categories(line: str) -> tuple[str, ...]:
    """The codes of an ``unsafe`` verdict's second line; raises GuardVerdictError unless it is exactly that."""
    text = line.strip()
    if _CODES.fullmatch(text):
        codes = tuple(code.strip() for code in text.split(","))
        if all(code in GUARD_CATEGORIES for code in codes):
            return codes
    raise GuardVerdictError(f"the guard model's categories line is not a list of Llama Guard codes: {line[:200]!r}")


class GuardPolicy(WindowedPolicy):
    """A guard model on an engine: one sequence per text, all of a batch submitted together.

    ``encode`` turns the Llama Guard task text into the guard model's prompt ids (its turn format);
    checks run on the checker's thread, which hands the engine work to ``loop`` and waits.
    """

    def __init__(self, engine: EngineClient, encode: Callable[[str], list[int]], loop: asyncio.AbstractEventLoop,
                 *, name: str, window: int = 200) -> None:
        self.engine = engine
        self.encode = encode
        self.loop = loop
        self.model = f"guard:{name}"
        self.configure(window)
        tokenizer = engine.tokenizer
        self._safe = tokenizer.tokenize("safe", add_special=False, parse_special=False)
        self._unsafe = tokenizer.tokenize("unsafe\n", add_special=False, parse_special=False)
        if not self._safe or not self._unsafe or self._safe[0] == self._unsafe[0]:
            raise ValueError("the guard model's vocabulary cannot tell 'safe' from 'unsafe' by the first token")
        bias = ((self._safe[0], 100.0), (self._unsafe[0], 100.0))
        self._verdict_params = SamplingParams(max_tokens=1, temperature=0.0, logprobs=20, logit_bias=bias)
        self._codes_params = SamplingParams(max_tokens=MAX_VERDICT_TOKENS, temperature=0.0)

    def score(self, texts: Sequence[str]) -> list[ModerationResult]:
        """Judge every text at once on the engine; blocks the calling (checker) thread, never the loop."""
        future = asyncio.run_coroutine_threadsafe(self._judge(list(texts)), self.loop)
        return future.result(CHECK_TIMEOUT_S)

    async def _judge(self, texts: list[str]) -> list[ModerationResult]:
        prompts = [self.encode(guard_task(text)) for text in texts]
        firsts = await self._run([(ids, self._verdict_params) for ids in prompts])
        unsafe = [i for i, (_, event) in enumerate(firsts) if event.token_id == self._unsafe[0]]
        lines = await self._run([(prompts[i] + self._unsafe, self._codes_params) for i in unsafe])
        codes = {i: parse_categories(self._line(events)) for i, (events, _) in zip(unsafe, lines, strict=True)}
        results = []
        for i, (_, first) in enumerate(firsts):
            score = self._unsafe_probability(first, i in codes)
            categories = frozenset(c for code in codes.get(i, ()) for c in GUARD_CATEGORIES[code][1])
            results.append(ModerationResult(categories, dict.fromkeys(categories, score)))
        return results

    async def _run(self, requests: list[tuple[list[int], SamplingParams]]) -> list[tuple[list[TokenEvent], TokenEvent]]:
        """Each request's token events and its first event, all submitted at once."""
        if not requests:
            return []
        try:
            streams = self.engine.submit(requests)
        except (EngineError, ValueError) as exc:
            raise ModerationError(f"the guard model could not take the check: {exc}") from None
        try:
            return list(await asyncio.gather(*(_collect(stream) for stream in streams)))
        finally:
            for stream in streams:
                stream.close()

    def _line(self, events: list[TokenEvent]) -> str:
        """The text of the second line: the output up to its first newline (or all of it)."""
        tokenizer = self.engine.tokenizer
        data = b"".join(tokenizer.token_bytes(e.token_id) for e in events if e.finish is not FinishReason.EOG)
        text = data.decode("utf-8", errors="replace")
        line, newline, rest = text.partition("\n")
        if newline and rest.strip():
            raise GuardVerdictError(f"the guard model wrote more than a verdict: {text[:200]!r}")
        return line

    def _unsafe_probability(self, first: TokenEvent, unsafe: bool) -> float:
        probabilities = dict(first.top_logprobs or ())
        if self._safe[0] in probabilities and self._unsafe[0] in probabilities:
            p_safe = math.exp(probabilities[self._safe[0]])
            p_unsafe = math.exp(probabilities[self._unsafe[0]])
            return p_unsafe / (p_safe + p_unsafe)
        return 1.0 if unsafe else 0.0


async def _collect(stream: SequenceStream) -> tuple[list[TokenEvent], TokenEvent]:
    events = [event async for event in stream]
    return events, events[0]
