"""Token accounting of one complete stream: proof that no chunk was lost or sent twice.

Every content chunk carries at least one generated token (but for one last flush of text held back
for a stop string when generation ends), a choice that ends with ``length``
generated exactly ``max_tokens`` tokens, and ``usage.completion_tokens`` sums all choices. With
logprobs there is one entry per generated token, and the entries' bytes joined decode to the text.
So, per stream:

- more content chunks or logprobs entries than tokens means something was sent twice;
- fewer logprobs entries than tokens, or entries whose bytes do not make the text, means something
  was lost; so does ``usage`` below what the ``length`` choices alone must have generated.

Two cases are allowed by design and counted apart, not as losses: tokens cut with a stop string
are not listed (so with ``stop`` the entries may fall short and only form a prefix of the text),
and a character left unfinished by the last token (at most 3 tokens of bytes) is dropped with its
entries. The second is only accepted where a multi-byte character is plausible: a non-ASCII prompt
or text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .wire import ChoiceResult, StreamCheck, StreamSpec, Violation

_MAX_CUT_TOKENS = 3  # a UTF-8 character has at most 4 bytes, so at most 3 of them can be left pending
_MAX_CUT_CHARS = 16  # the text a withheld token may carry before the unfinished character's first byte


@dataclass
class Accounting:
    """What the accounting found in one stream: broken rules and the allowed shortfalls."""

    violations: list[Violation] = field(default_factory=list)
    cut_choices: int = 0
    """Choices whose last, unfinished character was dropped with its 1 to 3 tokens."""
    completion_tokens: int | None = None


def account(spec: StreamSpec, check: StreamCheck) -> Accounting:
    """Check token counts, logprobs entries and usage of a complete, error-free stream."""
    result = Accounting()
    choices = list(check.choices.values())
    for choice in choices:
        _choice(spec, choice, result)
    usage = check.usage
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    if isinstance(tokens, int):
        result.completion_tokens = tokens
        _usage(spec, choices, tokens, result)
    return result


def _lost(result: Accounting, detail: str) -> None:
    result.violations.append(Violation("tokens.lost", detail))


def _duplicated(result: Accounting, detail: str) -> None:
    result.violations.append(Violation("tokens.duplicated", detail))


def _cut_plausible(spec: StreamSpec, choice: ChoiceResult) -> bool:
    return not spec.ascii_prompt or not choice.text.isascii()


def _choice(spec: StreamSpec, choice: ChoiceResult, result: Accounting) -> None:
    limit = spec.max_tokens
    where = f"choice {choice.index}"
    if limit is not None and choice.content_chunks > limit:
        _duplicated(result, f"{where}: {choice.content_chunks} content chunks for at most {limit} tokens")
    if spec.logprobs is None:
        return
    if limit is not None and choice.logprobs.entries > limit:
        _duplicated(result, f"{where}: {choice.logprobs.entries} logprobs entries for at most {limit} tokens")
    if not spec.stop and choice.logprobs.entries < choice.content_chunks - 1:  # -1: a last flush of held text
        _lost(result, f"{where}: {choice.content_chunks} content chunks but {choice.logprobs.entries} entries")
    exact = not spec.stop  # without stop strings no token is withheld, but for an unfinished character
    if choice.finish_reason == "length" and limit is not None and choice.logprobs.entries < limit:
        missing = limit - choice.logprobs.entries
        if missing <= _MAX_CUT_TOKENS and _cut_plausible(spec, choice):
            result.cut_choices += 1
            exact = False
        else:
            _lost(result, f"{where}: finished by length after {limit} tokens, but {choice.logprobs.entries} entries")
    if not exact:
        return
    joined = choice.logprobs.joined()
    if joined is not None and joined != choice.text:
        short = choice.text.startswith(joined) and len(choice.text) - len(joined) <= _MAX_CUT_CHARS
        if short and _cut_plausible(spec, choice):
            result.cut_choices += 1
        else:
            at = first_difference(joined, choice.text)
            _lost(result, f"{where}: the logprobs entries make {len(joined)} chars, the text {len(choice.text)}; "
                          f"first difference at {at}")


def _usage(spec: StreamSpec, choices: list[ChoiceResult], tokens: int, result: Accounting) -> None:
    chunks = sum(c.content_chunks for c in choices)
    flushes = sum(c.finish_reason == "stop" for c in choices)  # held-back text flushed at end of generation
    if chunks > tokens + flushes:
        _duplicated(result, f"{chunks} content chunks but usage says {tokens} completion tokens")
    if spec.logprobs is not None:
        entries = sum(c.logprobs.entries for c in choices)
        if entries > tokens:
            _duplicated(result, f"{entries} logprobs entries but usage says {tokens} completion tokens")
        elif entries < tokens and not spec.stop:
            shortfall = tokens - entries
            allowed = sum(_MAX_CUT_TOKENS for c in choices if _cut_plausible(spec, c))
            if shortfall > allowed:
                _lost(result, f"{entries} logprobs entries but usage says {tokens} completion tokens")
    limit = spec.max_tokens
    if limit is None:
        return
    at_length = sum(c.finish_reason == "length" for c in choices)
    if tokens < at_length * limit:
        _lost(result, f"usage says {tokens} completion tokens; {at_length} choices ran to max_tokens={limit}")
    if tokens > len(choices) * limit:
        _duplicated(result, f"usage says {tokens} completion tokens for {len(choices)} choices of at most {limit}")


def first_difference(a: str, b: str) -> int:
    """The first index where ``a`` and ``b`` differ (the shorter length if one starts the other)."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))
