"""Constrained decoding: the mask kernel, grammar checks, and constrained sequences in the real engine."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from streamserve.engine import (
    EngineClient,
    EngineConfig,
    EngineError,
    FinishReason,
    GrammarError,
    SamplingParams,
    TokenEvent,
    check_grammar,
)
from streamserve.engine.constraint import Constraint, apply_mask
from streamserve.llama import Model

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer", "minimum": 0,
                                                                        "maximum": 150}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def json_grammar(schema: dict[str, Any]) -> str:
    return "%llguidance {}\nstart: %json " + json.dumps({**schema, "x-guidance": {"whitespace_pattern": r"\x20?"}})


# The mask kernel

def _naive(logits: np.ndarray, words: np.ndarray) -> np.ndarray:
    out = logits.copy()
    for token in range(len(out)):
        word = int(words[token // 32]) & 0xFFFFFFFF if token // 32 < len(words) else 0
        if not (word >> (token % 32)) & 1:
            out[token] = -np.inf
    return out


@pytest.mark.parametrize("density", [0.0, 0.001, 0.3, 0.9, 1.0])
@pytest.mark.parametrize("n_vocab", [64, 100, 4096])
def test_apply_mask_forbids_exactly_the_cleared_bits(density: float, n_vocab: int) -> None:
    rng = np.random.default_rng(int(density * 1000) + n_vocab)
    bits = rng.random(((n_vocab + 31) // 32) * 32) < density
    words = np.packbits(bits, bitorder="little").view(np.int32).copy()
    logits = rng.standard_normal(n_vocab).astype(np.float32)
    expected = _naive(logits, words)
    apply_mask(logits, words)
    assert np.array_equal(logits, expected)


def test_apply_mask_leaves_an_all_allowed_row_untouched() -> None:
    logits = np.arange(64, dtype=np.float32)
    apply_mask(logits, np.full(2, -1, dtype=np.int32))
    assert np.array_equal(logits, np.arange(64, dtype=np.float32))


# Grammar checks

def test_check_grammar_accepts_a_schema_and_names_an_unsupported_keyword() -> None:
    check_grammar(json_grammar(PERSON))
    with pytest.raises(GrammarError, match="uniqueItems"):
        check_grammar(json_grammar({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}))
    with pytest.raises(GrammarError):
        check_grammar("start: (")


# In the engine

@pytest.fixture(scope="module")
def engine(model: Model) -> Iterator[EngineClient]:
    eng = EngineClient(model, EngineConfig(max_num_seqs=4, max_model_len=512, max_queue=4, n_threads=1,
                                           max_num_batched_tokens=256))
    eng.start()
    yield eng
    eng.stop()


def prompt(model: Model, user: str) -> list[int]:
    text = f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    return model.tokenize(text, add_special=False, parse_special=True)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 120))


async def events_of(engine: EngineClient, requests: list[tuple[list[int], SamplingParams]]) -> list[list[TokenEvent]]:
    async def collect(stream: Any) -> list[TokenEvent]:
        return [event async for event in stream]

    return list(await asyncio.gather(*(collect(s) for s in engine.submit(requests))))


def text_of(model: Model, events: list[TokenEvent]) -> str:
    return b"".join(model.token_bytes(e.token_id) for e in events if e.finish is not FinishReason.EOG).decode()


def test_constrained_output_is_valid_and_ends_when_complete(engine: EngineClient, model: Model) -> None:
    params = [SamplingParams(max_tokens=60, temperature=t, seed=7, grammar=json_grammar(PERSON)) for t in (0.0, 1.5)]
    results = run(events_of(engine, [(prompt(model, "Describe Bob as JSON."), p) for p in params]))
    for events in results:
        value = json.loads(text_of(model, events))
        assert set(value) == {"name", "age"} and isinstance(value["age"], int) and 0 <= value["age"] <= 150
        assert events[-1].finish is FinishReason.EOG  # ended by the grammar, not by the token limit
        assert all(e.finish is None for e in events[:-1])


def test_unconstrained_sequences_beside_a_constrained_one_are_unchanged(engine: EngineClient, model: Model) -> None:
    greedy = SamplingParams(max_tokens=12, temperature=0.0)
    ids = prompt(model, "Name three colours.")
    (alone,) = run(events_of(engine, [(ids, greedy)]))
    ids_json = prompt(model, "Describe Bob as JSON.")
    beside = run(events_of(engine, [(ids, greedy), (ids_json, SamplingParams(max_tokens=12, temperature=0.0,
                                                                             grammar=json_grammar(PERSON)))]))
    # Batched logits can differ in the last bits; the free text must not be forced into JSON.
    assert not text_of(model, beside[0]).startswith("{")
    assert text_of(model, alone)[:8] == text_of(model, beside[0])[:8]


def test_a_refused_grammar_fails_submit_and_queues_nothing(engine: EngineClient, model: Model) -> None:
    async def submit_bad() -> None:
        engine.submit([(prompt(model, "hi"), SamplingParams(max_tokens=4, grammar="start: %json {\"type\": 3}"))])

    with pytest.raises(GrammarError):
        run(submit_bad())
    assert engine.stats().waiting == 0 and engine.stats().running == 0
    (events,) = run(events_of(engine, [(prompt(model, "hi"), SamplingParams(max_tokens=3, temperature=0.0))]))
    assert events[-1].finish is not None


def test_a_failing_matcher_fails_only_its_sequence(engine: EngineClient, model: Model,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    good = engine.grammars.compile(json_grammar(PERSON))
    broken = good.copy()
    broken.matcher.consume_token(model.tokenize("hello", add_special=False, parse_special=False)[0])
    assert broken.matcher.is_error()

    def compile_broken(grammar: str) -> Constraint:
        return broken

    monkeypatch.setattr(engine.grammars, "compile", compile_broken)

    async def go() -> tuple[BaseException | None, list[TokenEvent]]:
        bad, fine = engine.submit([(prompt(model, "a"), SamplingParams(max_tokens=8, grammar="unused")),
                                   (prompt(model, "b"), SamplingParams(max_tokens=8, temperature=0.0))])
        error: BaseException | None = None
        try:
            async for _ in bad:
                pass
        except EngineError as exc:
            error = exc
        return error, [event async for event in fine]

    error, events = run(go())
    assert isinstance(error, EngineError) and "grammar" in str(error)
    assert events[-1].finish is not None and len(events) >= 1
