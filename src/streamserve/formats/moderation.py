"""Moderation results as the wire formats show them: OpenAI's ``/v1/moderations`` result and Azure's filter results."""

from __future__ import annotations

from typing import Any

from streamserve.moderation import APPLIED_INPUT_TYPES, CATEGORIES, ModerationResult


def result_dict(result: ModerationResult) -> dict[str, Any]:
    """One ``/v1/moderations`` result: ``flagged`` and the 13 categories' flags, scores and input types."""
    return {
        "flagged": result.flagged,
        "categories": {name: name in result.flagged_categories for name in CATEGORIES},
        "category_scores": {name: result.score(name) for name in CATEGORIES},
        "category_applied_input_types": {name: list(APPLIED_INPUT_TYPES[name]) for name in CATEGORIES},
    }


# Azure's four severity-graded categories, each fed by the OpenAI categories it covers.
_AZURE_GRADED = {
    "hate": ("hate", "hate/threatening", "harassment", "harassment/threatening"),
    "self_harm": ("self-harm", "self-harm/intent", "self-harm/instructions"),
    "sexual": ("sexual", "sexual/minors"),
    "violence": ("violence", "violence/graphic", "harassment/threatening", "hate/threatening", "illicit/violent"),
}


def content_filter_results(result: ModerationResult) -> dict[str, Any]:
    """Azure's ``content_filter_results``: ``{filtered, severity}`` per graded category, ``illicit`` as detected."""
    graded = {}
    for name, sources in _AZURE_GRADED.items():
        score = max(result.score(s) for s in sources)
        filtered = any(s in result.flagged_categories for s in sources)
        graded[name] = {"filtered": filtered, "severity": _severity(score, filtered)}
    illicit = {"illicit", "illicit/violent"} & result.flagged_categories
    graded["illicit"] = {"filtered": bool(illicit), "detected": bool(illicit)}
    return graded


def _severity(score: float, filtered: bool) -> str:
    if filtered:
        return "high" if score >= 0.8 else "medium"
    return "low" if score >= 0.5 else "safe"
