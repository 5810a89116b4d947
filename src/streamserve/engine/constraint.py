"""Constrained decoding: one llguidance matcher per sequence, its token mask applied to that sequence's logits.

A grammar arrives as text in llguidance's own forms (Lark with ``%json``, or its JSON grammar); the
engine knows nothing of what it describes. The client compiles it (``Grammars``); each step, on the engine
thread, the masks of every constrained sequence are
computed in one call (one GIL release for all of them), each is written into its sequence's logits row
in place, the row's own sampler chain draws as usual, and the drawn token advances the matcher. End of
generation is in the mask only once the grammar is complete. Sequences without a grammar never come here.
"""

from __future__ import annotations

from collections.abc import Sequence

import llguidance
import llguidance.numpy
import numpy as np
import numpy.typing as npt


class GrammarError(ValueError):
    """llguidance refuses a grammar: the message says why (an unsupported schema keyword, a syntax error...)."""


class ConstraintError(RuntimeError):
    """A matcher failed during generation (a resource limit, a token it rejects); only its sequence fails."""


def check_grammar(grammar: str) -> None:
    """Raise ``GrammarError`` if llguidance cannot compile ``grammar``; needs no model, so it runs before queueing."""
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar)
    if is_error:
        raise GrammarError(messages[0] if messages else "the grammar is invalid")


class Constraint:
    """The grammar state of one sequence: which tokens may come next, advanced by each sampled token."""

    __slots__ = ("eos_token", "matcher")

    def __init__(self, matcher: llguidance.LLMatcher, eos_token: int) -> None:
        self.matcher = matcher
        self.eos_token = eos_token

    def consume(self, token: int) -> None:
        """Advance past ``token``; raise ``ConstraintError`` if the grammar rejects it."""
        if not self.matcher.consume_token(token):
            raise ConstraintError(f"the output grammar failed: {self.matcher.get_error()}")

    def valid_prefix(self, tokens: list[int]) -> int:
        """How many leading ``tokens`` the grammar accepts from here, checked without advancing the matcher."""
        return int(self.matcher.validate_tokens(tokens))

    def forced(self) -> list[int]:
        """The tokens the grammar forces from here (none if it allows a choice), without advancing the matcher."""
        return list(self.matcher.compute_ff_tokens())

    @property
    def complete(self) -> bool:
        """Whether the grammar is finished: nothing but end of generation may follow."""
        return self.matcher.is_stopped()

    def copy(self) -> Constraint:
        """An independent copy in the same state (the ``n`` choices of one request)."""
        return Constraint(self.matcher.deep_copy(), self.eos_token)


class Grammars:
    """Compiles grammars into matchers for one model's llguidance tokenizer; the client does it before queueing.

    Compiling is thread-safe and needs no engine state, so a grammar llguidance refuses is an error of the
    request, raised before anything runs.
    """

    def __init__(self, tokenizer: llguidance.LLTokenizer) -> None:
        self.tokenizer = tokenizer

    def compile(self, grammar: str) -> Constraint:
        """A fresh matcher for ``grammar``; raises ``GrammarError`` if llguidance refuses it."""
        matcher = llguidance.LLMatcher(self.tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise GrammarError(matcher.get_error())
        return Constraint(matcher, self.tokenizer.eos_token)


class Masks:
    """Applies the constrained sequences' token masks on the engine thread: a mask executor and its buffer."""

    def __init__(self, tokenizer: llguidance.LLTokenizer, capacity: int) -> None:
        self._vocab_size = tokenizer.vocab_size
        self._capacity = capacity
        self._executor: llguidance.LLExecutor | None = None
        self._bitmask: npt.NDArray[np.int32] | None = None

    def apply(self, rows: Sequence[tuple[Constraint, npt.NDArray[np.float32]]]) -> list[str | None]:
        """Mask each logits row to the tokens its constraint allows; per row, None or the matcher's error.

        All masks are computed in one llguidance call; a failed matcher's row is left as it was and its
        error returned, so the caller fails that sequence alone.
        """
        if not rows:
            return []
        bitmask = self._buffer(len(rows))
        llguidance.numpy.fill_next_token_bitmask_par(
            self._executor_for(), [(c.matcher, i) for i, (c, _) in enumerate(rows)], bitmask
        )
        errors: list[str | None] = []
        for i, (constraint, logits) in enumerate(rows):
            if constraint.matcher.is_error():
                errors.append(f"the output grammar failed: {constraint.matcher.get_error()}")
                continue
            apply_mask(logits, bitmask[i])
            errors.append(None)
        return errors

    def _executor_for(self) -> llguidance.LLExecutor:
        if self._executor is None:
            self._executor = llguidance.LLExecutor()
        return self._executor

    def _buffer(self, rows: int) -> npt.NDArray[np.int32]:
        if self._bitmask is None or self._bitmask.shape[0] < rows:
            size = max(rows, self._capacity)
            self._bitmask = llguidance.numpy.allocate_token_bitmask(size, self._vocab_size)
        return self._bitmask


def apply_mask(logits: npt.NDArray[np.float32], words: npt.NDArray[np.int32]) -> None:
    """Set to -inf, in place, every logit whose bit in ``words`` (32 tokens per word, low bit first) is 0.

    An all-allowed mask (free text before a lazy trigger) costs a comparison. A mostly-forbidden one
    keeps the few allowed values, fills the row and puts them back, which is cheaper at a 262k
    vocabulary than indexing every forbidden logit.
    """
    if (words == -1).all():
        return
    allowed = np.unpackbits(words.view(np.uint8), bitorder="little")[: logits.size].view(np.bool_)
    if len(allowed) < logits.size:
        logits[len(allowed):] = -np.inf
        logits = logits[: len(allowed)]
    if 2 * np.count_nonzero(allowed) > logits.size:
        logits[~allowed] = -np.inf
        return
    keep = np.flatnonzero(allowed)
    values = logits[keep]
    logits.fill(-np.inf)
    logits[keep] = values
