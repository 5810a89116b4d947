"""Text normalization for matching word lists and patterns, with a map back to the original characters.

Every original character is normalized on its own (compatibility-decomposed, accents and
invisible format characters dropped, case-folded), so the normalization of a prefix is a prefix
of the normalization of the whole text: a stream can be matched piece by piece exactly as the
whole text would be. ``for_words`` also undoes common obfuscations: digit and symbol
substitutions ("1d10t") and Cyrillic/Greek look-alike letters.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass

_LOOKALIKES = str.maketrans({
    "0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "|": "l",
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
    "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ɡ": "g",
    "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u",
    "χ": "x",
})


@dataclass(frozen=True, slots=True)
class Normalized:
    """Normalized text and, for each of its characters, the index of the original character it came from."""

    text: str
    origin: tuple[int, ...]

    def original_start(self, index: int, length: int) -> int:
        """The original index where normalized position ``index`` begins (``length`` past the end)."""
        return self.origin[index] if index < len(self.origin) else length

    def original_end(self, index: int, length: int) -> int:
        """The original index just after normalized position ``index - 1``."""
        return self.origin[index - 1] + 1 if index > 0 else 0


@functools.lru_cache(maxsize=4096)
def _fold(char: str) -> str:
    """One character's normalized form: NFKC, then accents and format characters dropped, case-folded."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", char))
    kept = "".join(c for c in decomposed if not unicodedata.combining(c) and unicodedata.category(c) != "Cf")
    return kept.casefold()


def normalize(text: str, *, for_words: bool = False) -> Normalized:
    """Normalize ``text`` character by character; ``for_words`` also maps look-alikes to letters."""
    out: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        folded = _fold(char)
        if for_words:
            folded = folded.translate(_LOOKALIKES)
        out.append(folded)
        origin.extend([index] * len(folded))
    return Normalized("".join(out), tuple(origin))
