"""Moderation policies behind one small interface, and the shared checker that batches their checks.

Policies: word lists and patterns from a TOML file (``rules``), the shipped classifier
``alt-profanity-check`` (``profanity``, an optional extra) and a guard model run by our own engine
in the Llama Guard 3 format (``guard``). The generation layer holds text back until these clear it;
nothing here knows HTTP or the wire.
"""

from streamserve.moderation.categories import APPLIED_INPUT_TYPES, CATEGORIES, ModerationResult
from streamserve.moderation.checker import Checker, ModerationObserver
from streamserve.moderation.policy import ModerationError, Policy, Scan, Window, WindowedPolicy
from streamserve.moderation.rules import RulesError, RulesPolicy

__all__ = [
    "APPLIED_INPUT_TYPES",
    "CATEGORIES",
    "Checker",
    "ModerationError",
    "ModerationObserver",
    "ModerationResult",
    "Policy",
    "RulesError",
    "RulesPolicy",
    "Scan",
    "Window",
    "WindowedPolicy",
]
