"""The rules policy: per-category word lists and regular expressions from a TOML file.

File format, one table per category named with OpenAI's category names::

    [harassment]
    words = ["idiot", "shut up"]        # whole words or phrases
    patterns = ["\\bstupid\\b"]          # regular expressions (the ``regex`` package's syntax)

    ["self-harm"]                        # quoted where TOML needs it
    words = ["kill myself"]

Words match whole words on normalized text (see ``normalize``): any case, accents, look-alike
letters and digits ("1d10t"), letters repeated ("idiooot") or split by one separator
("i.d.i.o.t"); the words of a phrase may be split by any run of separators. Patterns match the
case-folded, accent-free text. Matching a stream holds back only text that could still be the
start of a match (the ``regex`` package's partial matching), like a stop string.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import regex

from streamserve.moderation.categories import CATEGORIES, ModerationResult
from streamserve.moderation.normalize import Normalized, normalize
from streamserve.moderation.policy import Policy, Scan, Window

_SEPARATOR = r"[\W_]"
_FLAGS = regex.IGNORECASE | regex.UNICODE | regex.V0


class RulesError(ValueError):
    """An invalid rules file; the message names the file and the line."""


@dataclass(frozen=True, slots=True)
class _Rule:
    """One category's compiled word list (on the look-alike view) and patterns (on the plain view)."""

    category: str
    words: regex.Pattern[str] | None
    patterns: regex.Pattern[str] | None


@dataclass(frozen=True, slots=True)
class _Hit:
    """What one view of a window shows: conclusive matches by category and where a possible match begins."""

    flags: dict[str, list[tuple[int, int]]]
    hold_from: int | None


class RulesPolicy(Policy):
    """Word lists and patterns per category; flags score 1.0, everything else 0.0."""

    context = 32

    def __init__(self, rules: Sequence[_Rule], source: str = "rules") -> None:
        self._rules = tuple(rules)
        self.model = f"streamserve-rules:{source}"
        self.stride = None

    @classmethod
    def from_file(cls, path: str | Path) -> RulesPolicy:
        """Load and compile a rules file; raises RulesError naming the line of the first problem."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RulesError(f"{path}: cannot read the rules file: {exc}") from None
        return cls(parse_rules(text, str(path)), path.name)

    def score(self, texts: Sequence[str]) -> list[ModerationResult]:
        """Every category matched anywhere in each whole text."""
        return [self._scan_one(Window(text, 0, True)).result for text in texts]

    def scan(self, windows: Sequence[Window]) -> list[Scan]:
        """Flag conclusive matches in each window's new text; hold back from the earliest possible match."""
        return [self._scan_one(window) for window in windows]

    def _scan_one(self, window: Window) -> Scan:
        text = window.text
        views = (normalize(text, for_words=True), normalize(text))
        flags: dict[str, list[tuple[int, int]]] = {}
        hold_from: int | None = None
        for rule in self._rules:
            for compiled, view in ((rule.words, views[0]), (rule.patterns, views[1])):
                if compiled is None:
                    continue
                hit = _match(compiled, view, len(text), window)
                if hit.flags:
                    flags.setdefault(rule.category, []).extend(hit.flags[""])
                if hit.hold_from is not None:
                    hold_from = hit.hold_from if hold_from is None else min(hold_from, hit.hold_from)
        spans = tuple(sorted(span for found in flags.values() for span in found))
        result = ModerationResult(frozenset(flags), {name: 1.0 for name in flags}, spans)
        new = len(text) - window.start
        if result.flagged:
            return Scan(result, 0)
        cleared = new if hold_from is None else max(0, min(new, hold_from - window.start))
        return Scan(result, cleared)


def _match(compiled: regex.Pattern[str], view: Normalized, length: int, window: Window) -> _Hit:
    """Conclusive matches ending in the new text, and the start of a match still in progress at the end.

    A match that reaches the end of unfinished text is not conclusive: a word-boundary check may
    still fail ("idiot" then "s"). Partial matches only ever reach the end of the text.
    """
    found: list[tuple[int, int]] = []
    hold_from: int | None = None
    end_of_view = len(view.text)
    for m in compiled.finditer(view.text, partial=True):
        start = view.original_start(m.start(), length)
        end = view.original_end(m.end(), length)
        if m.partial or (m.end() == end_of_view and not window.final):
            if start < length and not window.final:
                hold_from = start
            break
        if end > window.start:
            found.append((start, end))
    return _Hit({"": found} if found else {}, hold_from)


def parse_rules(text: str, source: str = "rules") -> list[_Rule]:
    """Parse and compile a rules file's text; raises RulesError naming ``source`` and the line."""
    lines = text.splitlines()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        at = re.search(r"\(at line (\d+), column \d+\)", message)
        line = int(at.group(1)) if at else max(1, len(lines))
        message = re.sub(r"\s*\(at [^)]*\)", "", message)
        raise RulesError(f"{source} line {line}: invalid TOML: {message}") from None
    rules = []
    for category, table in data.items():
        where = f"{source} line {_line_of(lines, category)}"
        if category not in CATEGORIES:
            raise RulesError(f"{where}: unknown category {category!r}; use one of: {', '.join(CATEGORIES)}")
        if not isinstance(table, dict):
            raise RulesError(f"{where}: {category!r} must be a table ([{category}]) with 'words' and 'patterns'")
        unknown = set(table) - {"words", "patterns"}
        if unknown:
            key = sorted(unknown)[0]
            raise RulesError(f"{source} line {_line_of(lines, key)}: unknown key {key!r} in [{category}]; "
                             "expected 'words' and 'patterns'")
        words = _strings(table, "words", category, source, lines)
        patterns = _strings(table, "patterns", category, source, lines)
        rules.append(_Rule(category, _compile_words(words, category, source, lines),
                           _compile_patterns(patterns, category, source, lines)))
    if not rules:
        raise RulesError(f"{source}: no categories defined")
    return rules


def _strings(table: dict[str, object], key: str, category: str, source: str, lines: list[str]) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RulesError(f"{source} line {_line_of(lines, key)}: [{category}] {key} must be a list of strings")
    for item in value:
        if not item.strip():
            raise RulesError(f"{source} line {_line_of(lines, key)}: [{category}] {key} has an empty entry")
    return list(value)


def _compile_words(words: list[str], category: str, source: str, lines: list[str]) -> regex.Pattern[str] | None:
    if not words:
        return None
    alternatives = []
    for word in words:
        folded = normalize(word, for_words=True).text.split()
        parts = [f"{_SEPARATOR}?".join(regex.escape(c) + "+" for c in piece) for piece in folded]
        if not parts:
            raise RulesError(f"{source} line {_line_of(lines, word)}: [{category}] word {word!r} has no letters")
        alternatives.append(f"{_SEPARATOR}+".join(parts))
    return regex.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", _FLAGS)


def _compile_patterns(patterns: list[str], category: str, source: str,
                      lines: list[str]) -> regex.Pattern[str] | None:
    if not patterns:
        return None
    for pattern in patterns:
        where = f"{source} line {_line_of(lines, pattern)}"
        try:
            compiled = regex.compile(pattern, _FLAGS)
        except regex.error as exc:
            raise RulesError(f"{where}: [{category}] invalid pattern {pattern!r}: {exc}") from None
        if compiled.search("") is not None:
            raise RulesError(f"{where}: [{category}] pattern {pattern!r} matches empty text")
    return regex.compile("|".join(f"(?:{p})" for p in patterns), _FLAGS)


def _line_of(lines: list[str], needle: str) -> int:
    """The 1-based line where ``needle`` first appears (as written, or TOML-escaped); 1 if not found."""
    candidates = (needle, needle.replace("\\", "\\\\"), needle.replace('"', '\\"'))
    for number, line in enumerate(lines, 1):
        if any(c in line for c in candidates):
            return number
    return 1
