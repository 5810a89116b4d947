"""The tokenizer prompting and generation need, as a protocol (the llama Model implements it)."""

from __future__ import annotations

from typing import Protocol


class Tokenizer(Protocol):
    """Text to token ids and token ids to raw bytes, for one model's vocabulary."""

    @property
    def add_bos(self) -> bool:
        """Whether the model expects a BOS token at the start of a prompt."""
        ...

    @property
    def bos_text(self) -> str:
        """The BOS token's text (empty if the vocabulary has none)."""
        ...

    @property
    def eos_text(self) -> str:
        """The EOS token's text (empty if the vocabulary has none)."""
        ...

    @property
    def control_texts(self) -> frozenset[str]:
        """Texts of control tokens (``<|im_end|>``, ``<end_of_turn>``…) that user text must not inject."""
        ...

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        """Token ids of ``text``; ``add_special`` adds BOS, ``parse_special`` turns control-token text into ids."""
        ...

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes of one token's piece (may be part of a UTF-8 character)."""
        ...

    def is_eog(self, token_id: int) -> bool:
        """Whether the token ends generation (EOS, end-of-turn…)."""
        ...
