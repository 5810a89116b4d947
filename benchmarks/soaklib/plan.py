"""The soak benchmark's requests, drawn from a seeded generator so a run can be repeated exactly.

Each request picks an endpoint (chat or legacy completions), a prompt, ``n``, ``max_tokens``,
``stop``, ``logprobs``, ``include_usage`` and a temperature (mostly 0, so that a sample can be
replayed and compared), and a client behaviour: read normally, read slowly, or hang up at a
random point. Early hang-ups favour the long prompt, so that some land while it is prefilled;
the others land in the queue (when concurrency exceeds the server's lanes) or during decode.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from streamserve.bench.prompts import Endpoint, Prompt, builtin_prompts, user_prompt
from streamserve.bench.record import ReadPlan

Behaviour = Literal["normal", "slow", "hangup"]

_SYSTEM = (
    "You are a careful assistant for a public library. Answer briefly and politely, in plain text, "
    "and say when you do not know. Library hours are 9 to 18 on weekdays and 10 to 14 on Saturdays."
)
_NOTES = (
    "Streaming sends each token as soon as it exists, as server-sent events, instead of one answer at "
    "the end. The server batches many sequences together and admits new ones between decoding steps; "
    "a long prompt is read in chunks so that the streams already running keep their pace. "
)
STOP_STRINGS = (".", "\n", ",", " the", "5", "!", "\n\n", " and", "。", ":")
LONG_PROMPT = "prefill-long"


def soak_prompts() -> list[Prompt]:
    """The prompt mix: the bench's built-in set, a shared system prompt, emoji, counting, and a long prompt."""
    extra = [
        Prompt("system-hours", [{"role": "system", "content": _SYSTEM},
                                {"role": "user", "content": "When are you open on Saturday?"}]),
        Prompt("system-card", [{"role": "system", "content": _SYSTEM},
                               {"role": "user", "content": "How do I get a library card?"}]),
        user_prompt("emoji", "Reply with three emoji that describe the sea, then explain each in a few words."),
        user_prompt("counting", "1, 2, 3, 4, 5,"),
        user_prompt(LONG_PROMPT, "Summarise these notes in one sentence.\n\n" + _NOTES * 6),
    ]
    return [*builtin_prompts(), *extra]


@dataclass(frozen=True)
class PlannedRequest:
    """One request of the soak: what is sent, and how its client reads the answer."""

    number: int
    endpoint: Endpoint
    prompt: str
    body: dict[str, Any]
    behaviour: Behaviour
    read: ReadPlan

    @property
    def n(self) -> int:
        """Choices asked for."""
        return int(self.body.get("n") or 1)

    @property
    def greedy(self) -> bool:
        """Temperature 0: the answer can be replayed and compared."""
        return self.body.get("temperature") == 0


def plan_requests(count: int, *, model: str, seed: int = 0, hangup_rate: float = 0.10,
                  slow_rate: float = 0.02, prompts: Sequence[Prompt] | None = None) -> list[PlannedRequest]:
    """``count`` requests drawn from ``random.Random(seed)``."""
    rng = random.Random(seed)
    pool = list(prompts or soak_prompts())
    by_name = {p.name: p for p in pool}
    return [_request(rng, number, model, pool, by_name, hangup_rate, slow_rate) for number in range(count)]


def phases(total: int, levels: Sequence[int], *, per_level: int = 10, minimum: int = 20) -> list[tuple[int, int]]:
    """Split ``total`` requests into (concurrency, requests) phases cycling through ``levels``."""
    if total < 1 or not levels or min(levels) < 1:
        raise ValueError("need at least one request and levels of at least 1")
    out: list[tuple[int, int]] = []
    left = total
    for level in itertools.cycle(levels):
        if left <= 0:
            break
        size = min(left, max(minimum, per_level * level))
        out.append((level, size))
        left -= size
    return out


def _request(rng: random.Random, number: int, model: str, pool: list[Prompt], by_name: dict[str, Prompt],
             hangup_rate: float, slow_rate: float) -> PlannedRequest:
    endpoint: Endpoint = "chat" if rng.random() < 0.5 else "completions"
    roll = rng.random()
    behaviour: Behaviour = "hangup" if roll < hangup_rate else "slow" if roll < hangup_rate + slow_rate else "normal"
    early = behaviour == "hangup" and rng.random() < 0.4
    prefill = early and LONG_PROMPT in by_name and rng.random() < 0.3
    prompt = by_name[LONG_PROMPT] if prefill else rng.choice(pool)
    n = rng.choices((1, 2, 3, 4), weights=(60, 25, 10, 5))[0]
    size = rng.random()
    max_tokens: int | None = rng.randint(1, 48) if size < 0.85 else rng.randint(49, 160)
    if endpoint == "completions" and rng.random() < 0.03:
        max_tokens = None  # the legacy default, 16
    greedy = rng.random() < 0.7
    body = prompt.body(endpoint, model=model, max_tokens=max_tokens, temperature=0.0 if greedy else 0.9,
                       stream=True, include_usage=rng.random() < 0.75)
    if not greedy and rng.random() < 0.5:
        body["seed"] = rng.randint(0, 2**31 - 1)
    if n > 1:
        body["n"] = n
    if endpoint == "chat" and max_tokens is not None and rng.random() < 0.1:
        body["max_completion_tokens"] = body.pop("max_tokens")
    if rng.random() < 0.25:
        body["stop"] = rng.sample(STOP_STRINGS, rng.randint(1, 4))
    if rng.random() < 0.2:
        k = rng.choice((0, 1, 3, 5))
        if endpoint == "chat":
            body["logprobs"] = True
            if k or rng.random() < 0.5:
                body["top_logprobs"] = k
        else:
            body["logprobs"] = k
    read = ReadPlan(keep_events=True)
    if behaviour == "slow":
        read = ReadPlan(keep_events=True, pause_s=rng.uniform(0.02, 0.12))
    elif early:
        read = ReadPlan(keep_events=True, hangup_after_s=rng.uniform(0.0, 0.8))
    elif behaviour == "hangup":
        expected = n * (1 + min(max_tokens or 16, 32))
        read = ReadPlan(keep_events=True, hangup_after_events=rng.randint(0, expected))
    return PlannedRequest(number, endpoint, prompt.name, body, behaviour, read)
