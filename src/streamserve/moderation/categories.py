"""OpenAI's 13 moderation categories and the result of checking one text against them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

CATEGORIES: tuple[str, ...] = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
"""Every category key of ``/v1/moderations``, in OpenAI's order."""

_TEXT_AND_IMAGE = frozenset({"self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "violence",
                             "violence/graphic"})

APPLIED_INPUT_TYPES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {name: ("text", "image") if name in _TEXT_AND_IMAGE else ("text",) for name in CATEGORIES}
)
"""Which input types a category can apply to (OpenAI's ``category_applied_input_types`` for omni models)."""


@dataclass(frozen=True, slots=True)
class ModerationResult:
    """One text's verdict: which categories are flagged and a score in [0, 1] for each.

    Categories a policy does not cover score 0 and are never flagged. ``spans`` are the
    character ranges (start, end) of the text that caused a flag, when the policy can tell.
    """

    flagged_categories: frozenset[str] = frozenset()
    scores: Mapping[str, float] = field(default_factory=dict)
    spans: tuple[tuple[int, int], ...] = ()

    @property
    def flagged(self) -> bool:
        """Whether any category is flagged."""
        return bool(self.flagged_categories)

    def score(self, category: str) -> float:
        """The category's score; 0 when the policy did not score it."""
        return self.scores.get(category, 0.0)

    @staticmethod
    def combine(results: Iterable[ModerationResult]) -> ModerationResult:
        """Several policies' verdicts on the same text: flags united, the highest score kept."""
        flagged: set[str] = set()
        scores: dict[str, float] = {}
        spans: list[tuple[int, int]] = []
        for result in results:
            flagged |= result.flagged_categories
            for name, value in result.scores.items():
                scores[name] = max(value, scores.get(name, 0.0))
            spans.extend(result.spans)
        return ModerationResult(frozenset(flagged), scores, tuple(sorted(spans)))
