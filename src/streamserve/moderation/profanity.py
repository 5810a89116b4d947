"""The shipped classifier: ``alt-profanity-check`` (a scikit-learn model inside its wheel), as ``harassment``.

An optional extra (``pip install 'streamserve[profanity]'``) because it pins scikit-learn and
joblib exactly. One call scores a whole batch for about the price of one text, so the checker
batches windows across streams. It knows one label, "offensive", reported as ``harassment``.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from typing import Any

from streamserve.moderation.categories import ModerationResult
from streamserve.moderation.policy import WindowedPolicy

PACKAGE = "profanity_check"
CATEGORY = "harassment"


def available() -> bool:
    """Whether the optional ``alt-profanity-check`` package is installed."""
    return importlib.util.find_spec(PACKAGE) is not None


class ProfanityPolicy(WindowedPolicy):
    """alt-profanity-check's offensive-language probability as the ``harassment`` score."""

    def __init__(self, threshold: float = 0.9, window: int = 200) -> None:
        if not available():
            raise ModuleNotFoundError(
                "the profanity classifier needs the optional extra: pip install 'streamserve[profanity]'")
        self._predict_prob: Any = importlib.import_module(PACKAGE).predict_prob
        self.threshold = threshold
        self.model = "alt-profanity-check"
        self.configure(window)

    def score(self, texts: Sequence[str]) -> list[ModerationResult]:
        """One probability per text, in one call of the model."""
        probabilities = self._predict_prob(list(texts))
        results = []
        for value in probabilities:
            p = float(value)
            flagged = frozenset({CATEGORY}) if p >= self.threshold else frozenset()
            results.append(ModerationResult(flagged, {CATEGORY: p}))
        return results
