"""Speculative decoding on the real SmolLM2 model: drafts change how fast tokens come, never which tokens.

Each comparison runs its sequences alone and in one engine, so the only difference between the runs is
the draft. With one thread SmolLM2's kernels give a row the same logits in any ubatch of 1 to 63 rows of its
lane at every position (docs/determinism.md), so greedy and seeded output, logprobs included, must match bit
for bit.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from streamserve.engine import (
    EngineClient,
    EngineConfig,
    FinishReason,
    SamplingParams,
    SequenceStream,
    TokenEvent,
    verify_probe,
)
from streamserve.engine.constraint import Grammars
from streamserve.engine.sequence import Sequence
from streamserve.engine.speculation import DRAFT_MAX, Speculator
from streamserve.engine.verify_probe import (
    MAX_ROW_COST,
    MIN_ROW_COST,
    SAFE_ROWS,
    CallCost,
    VerifyProbe,
    probe_once,
    probe_verification,
)
from streamserve.llama import Batch, Context, Model, guidance_tokenizer, load_model
from streamserve.models import resolve_model
from tests.engine.test_constraint import PERSON, json_grammar
from tests.engine.test_engine import chat, collect

ROW_COST = 0.3
"""The cost of a row the drafts are sized for, fixed so that what is drafted does not depend on the machine's load."""

PROMPT = "List the numbers from 1 to 12, one per line, each as 'Number N is here.'"


def _config(**overrides: Any) -> EngineConfig:
    values: dict[str, Any] = dict(max_num_seqs=4, max_model_len=512, max_queue=4, n_threads=1,
                                  max_num_batched_tokens=128)
    values.update(overrides)
    return EngineConfig(**values)


@pytest.fixture(scope="module")
def engine(model: Model) -> Iterator[EngineClient]:
    """An engine with n-gram speculation off: drafts come only from predictions."""
    eng = EngineClient(model, _config(speculative="off"))
    eng.start()
    eng.core.speculator.cost = CallCost.linear(ROW_COST)
    yield eng
    eng.stop()


def generate(engine: EngineClient, ids: list[int], params: SamplingParams) -> tuple[list[TokenEvent], SequenceStream]:
    async def go() -> tuple[list[TokenEvent], SequenceStream]:
        stream = engine.generate(ids, params)
        return await collect(stream), stream

    return asyncio.run(asyncio.wait_for(go(), 120))


def trace(events: list[TokenEvent]) -> list[tuple[int, float | None, Any, FinishReason | None]]:
    return [(e.token_id, e.logprob, e.top_logprobs, e.finish) for e in events]


@pytest.fixture(scope="module")
def own_answer(engine: EngineClient, model: Model) -> list[int]:
    """The model's greedy answer to PROMPT, without any draft."""
    events, stream = generate(engine, chat(model, PROMPT), SamplingParams(max_tokens=60, temperature=0.0))
    assert stream.drafted == 0
    return [e.token_id for e in events if e.finish is not FinishReason.EOG]


def test_a_prediction_of_the_own_answer_is_accepted_and_changes_nothing(engine: EngineClient, model: Model,
                                                                       own_answer: list[int]) -> None:
    params = SamplingParams(max_tokens=60, temperature=0.0, logprobs=3)
    plain, _ = generate(engine, chat(model, PROMPT), params)
    predicted, stream = generate(engine, chat(model, PROMPT), replace(params, prediction=tuple(own_answer)))
    assert trace(predicted) == trace(plain)  # tokens, logprobs, alternatives and finish, bit for bit
    # Every draft is right; the first token and each verification's last are drawn, not drafted.
    assert stream.drafted == stream.accepted >= len(own_answer) * 3 // 4
    assert engine.stats().spec_accepted_tokens_total >= stream.accepted


def test_a_prediction_with_a_changed_span_realigns_and_changes_nothing(engine: EngineClient, model: Model,
                                                                      own_answer: list[int]) -> None:
    edited = list(own_answer)
    edited[20:24] = model.tokenize(" an entirely different passage", add_special=False, parse_special=False)
    params = SamplingParams(max_tokens=60, temperature=0.0)
    plain, _ = generate(engine, chat(model, PROMPT), params)
    predicted, stream = generate(engine, chat(model, PROMPT), replace(params, prediction=tuple(edited)))
    assert trace(predicted) == trace(plain)
    assert stream.drafted - stream.accepted > 0  # some rejected...
    assert stream.accepted > len(own_answer) - 20  # ...and most accepted again after the change


@pytest.mark.parametrize("extra", [{}, {"presence_penalty": 0.8, "frequency_penalty": 0.3},
                                   {"top_k": 20, "top_p": 0.9, "logprobs": 2}, {"repetition_penalty": 1.2}])
def test_seeded_sampling_with_a_prediction_draws_the_same_tokens(engine: EngineClient, model: Model,
                                                                 own_answer: list[int], extra: dict[str, Any]) -> None:
    params = SamplingParams(max_tokens=40, temperature=0.7, seed=11, **extra)
    plain, _ = generate(engine, chat(model, PROMPT), params)
    predicted, stream = generate(engine, chat(model, PROMPT), replace(params, prediction=tuple(own_answer)))
    assert trace(predicted) == trace(plain)
    assert stream.drafted > 0


@pytest.mark.parametrize("max_tokens", [1, 2, 7, 30])
def test_max_tokens_holds_exactly_with_a_prediction(engine: EngineClient, model: Model, own_answer: list[int],
                                                    max_tokens: int) -> None:
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, prediction=tuple(own_answer))
    events, _ = generate(engine, chat(model, PROMPT), params)
    assert [e.token_id for e in events] == own_answer[:max_tokens]
    assert events[-1].finish is FinishReason.LENGTH and all(e.finish is None for e in events[:-1])


def test_a_prediction_past_the_answer_ends_with_the_model(engine: EngineClient, model: Model,
                                                         own_answer: list[int]) -> None:
    short = chat(model, "What is 2+2? Answer with one word.")
    plain, _ = generate(engine, short, SamplingParams(max_tokens=40, temperature=0.0))
    longer = [e.token_id for e in plain if e.finish is None] + own_answer  # the prediction goes on
    predicted, stream = generate(engine, short, SamplingParams(max_tokens=40, temperature=0.0,
                                                               prediction=tuple(longer)))
    assert trace(predicted) == trace(plain)
    assert plain[-1].finish is FinishReason.EOG and stream.drafted > stream.accepted


def test_a_constrained_sequence_with_a_prediction_is_unchanged_and_valid(engine: EngineClient, model: Model) -> None:
    ids = chat(model, "Describe Bob as JSON.")
    params = SamplingParams(max_tokens=60, temperature=0.0, grammar=json_grammar(PERSON))
    plain, _ = generate(engine, ids, params)
    answer = [e.token_id for e in plain if e.finish is None]
    # The prediction goes on past the grammar's end, and a version with invalid JSON text in it.
    broken = answer[:3] + model.tokenize(" not json", add_special=False, parse_special=False) + answer[3:]
    for prediction in (answer + answer, broken):
        predicted, stream = generate(engine, ids, replace(params, prediction=tuple(prediction)))
        assert trace(predicted) == trace(plain)
        assert stream.accepted > 0
    text = b"".join(model.token_bytes(t) for t in answer).decode()
    assert set(json.loads(text)) == {"name", "age"}


def test_ngram_speculation_changes_nothing(engine: EngineClient, model: Model) -> None:
    ids = chat(model, "Repeat this sentence three times: 'The quick brown fox jumps over the lazy dog.'")
    params = SamplingParams(max_tokens=60, temperature=0.0, logprobs=1)
    plain, _ = generate(engine, ids, params)
    ngram = EngineClient(model, _config(speculative="ngram"))
    ngram.start()
    ngram.core.speculator.cost = CallCost.linear(ROW_COST)
    try:
        drafted, stream = generate(ngram, ids, params)
        seeded = SamplingParams(max_tokens=40, temperature=0.8, seed=3)
        assert trace(generate(ngram, ids, seeded)[0]) == trace(generate(engine, ids, seeded)[0])
    finally:
        ngram.stop()
    assert trace(drafted) == trace(plain)
    assert stream.drafted > 0 and stream.accepted > 0


def test_deterministic_mode_drafts_nothing(model: Model, own_answer: list[int]) -> None:
    eng = EngineClient(model, _config(deterministic=True, speculative="ngram"))
    eng.start()
    try:
        events, stream = generate(eng, chat(model, PROMPT), SamplingParams(max_tokens=20, temperature=0.0,
                                                                           prediction=tuple(own_answer)))
    finally:
        eng.stop()
    assert [e.token_id for e in events] == own_answer[:20]
    assert stream.drafted == 0 and eng.stats().spec_draft_tokens_total == 0


def test_busy_steps_draft_nothing_and_n_choices_keep_their_own_drafts(engine: EngineClient, model: Model,
                                                                     own_answer: list[int]) -> None:
    ids = chat(model, PROMPT)
    params = SamplingParams(max_tokens=30, temperature=0.0, prediction=tuple(own_answer))

    async def go(count: int) -> list[tuple[list[TokenEvent], SequenceStream]]:
        streams = engine.submit([(ids, params)] * count)
        return [(await collect(s), s) for s in streams]

    for count in (2, 4):  # two choices draft; four fill the step (speculation.BUSY) and draft nothing
        results = asyncio.run(asyncio.wait_for(go(count), 120))
        for events, _ in results:
            assert [e.token_id for e in events] == own_answer[:30]
        drafted = [stream.drafted for _, stream in results]
        if count == 2:
            assert all(drafted)
        else:  # at most the first, in the step before the other choices start decoding
            assert sum(drafted) <= DRAFT_MAX


CHI2_CRITICAL_0_001 = {1: 10.83, 2: 13.82, 3: 16.27, 4: 18.47, 5: 20.52, 6: 22.46, 7: 24.32, 8: 26.12}
"""The chi-square statistic exceeded with probability 0.001 at each number of degrees of freedom."""


def test_sampled_continuations_with_a_prediction_have_the_models_distribution(engine: EngineClient, model: Model,
                                                                             own_answer: list[int]) -> None:
    # Two independent samples (different seeds) of 3-token continuations, top-2 at temperature 1: one
    # plain, one verifying the greedy answer as a draft. Accepting drafts without drawing (or drawing
    # from the wrong row or chain state) would pile the second sample onto the prediction.
    ids = chat(model, PROMPT)
    n = 160

    def sample(first_seed: int, prediction: tuple[int, ...] | None) -> list[tuple[int, ...]]:
        async def go() -> list[tuple[int, ...]]:
            out = []
            for start in range(0, n, 2):
                params = [SamplingParams(max_tokens=3, temperature=1.0, top_k=2, seed=first_seed + start + i,
                                         prediction=prediction) for i in range(2)]
                streams = engine.submit([(ids, p) for p in params])
                out += [tuple(e.token_id for e in await collect(s)) for s in streams]
            return out

        return asyncio.run(asyncio.wait_for(go(), 300))

    plain = sample(1_000, None)
    drafted_before = engine.stats().spec_draft_tokens_total
    speculated = sample(5_000, tuple(own_answer))
    assert engine.stats().spec_draft_tokens_total - drafted_before >= n // 2
    categories = sorted(set(plain) | set(speculated))
    counts = [(plain.count(c), speculated.count(c)) for c in categories]
    # Pool the categories too rare for the test into one.
    pooled = [c for c in counts if sum(c) >= 10]
    rare = (sum(a for a, b in counts if a + b < 10), sum(b for a, b in counts if a + b < 10))
    if sum(rare):
        pooled.append(rare)
    assert len(pooled) >= 2, "the continuation should vary"
    chi2 = sum((a - b) ** 2 / (a + b) for a, b in pooled)  # two samples of equal size
    assert chi2 < CHI2_CRITICAL_0_001[min(len(pooled) - 1, 8)], (chi2, pooled)


COUNTING = ("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
            "seventeen eighteen nineteen twenty twenty-one twenty-two twenty-three twenty-four twenty-five")


def _probe(model: Model, n_ctx_seq: int, n_threads: int) -> VerifyProbe:
    context = Context(model, n_ctx_seq=n_ctx_seq, n_seq_max=1, n_batch=64, n_threads=n_threads)
    batch = Batch(DRAFT_MAX + 1)
    try:
        tokens = model.tokenize(COUNTING, add_special=False, parse_special=False)
        assert len(tokens) >= DRAFT_MAX + 2
        return probe_verification(context, batch, tokens[: DRAFT_MAX + 2])
    finally:
        batch.close()
        context.close()


def test_the_probe_finds_whole_drafts_exact_on_smollm2_in_one_thread(model: Model) -> None:
    # SmolLM2's Q4_1 weights are not repacked: a row's logits are the same in any call of under 64 rows, and
    # with one thread a lone decode's attention is one piece at every position.
    probe = _probe(model, 512, 1)
    assert probe.exact_rows == DRAFT_MAX + 1
    sizes = [rows for rows, _ in probe.cost.points]
    assert sizes == sorted(sizes) and sizes[0] == 1 and sizes[-1] == DRAFT_MAX + 1
    for (a, ca), (b, cb) in itertools.pairwise(probe.cost.points):  # rows never cost less than before
        assert ca + MIN_ROW_COST * (b - a) <= cb + 1e-9 or cb == ca
        assert cb <= 1 + MAX_ROW_COST * (b - 1)


def test_past_256_positions_two_threads_split_a_lone_decode_and_no_verification_is_exact(model: Model) -> None:
    # llama.cpp's CPU flash attention splits a one-row decode's keys between threads from 512 (padded) keys on,
    # which a call of several rows never does: the probe looks that far in, and ``auto`` then drafts no n-grams.
    far = _probe(model, 512, 2)
    assert far.exact_rows == 0
    assert _probe(model, 200, 2).exact_rows == DRAFT_MAX + 1  # a lane this short never reaches the split
    auto = Speculator("auto", max_model_len=512)
    auto.calibrate(far)
    assert not auto.ngram


def test_the_probe_is_kept_between_starts_and_measured_again_for_other_settings(
        model: Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A restart reads what the last start measured (no decode at all); other threads, or a file that cannot
    # be read, measure again.
    tokens = model.tokenize(COUNTING, add_special=False, parse_special=False)[: DRAFT_MAX + 2]
    monkeypatch.setattr(verify_probe, "_FINDINGS", {})

    def once(n_threads: int) -> VerifyProbe:
        context = Context(model, n_ctx_seq=200, n_seq_max=1, n_batch=64, n_threads=n_threads)
        batch = Batch(DRAFT_MAX + 1)
        try:
            return probe_once(context, batch, tokens, n_threads, tmp_path)
        finally:
            batch.close()
            context.close()

    measured = once(1)
    [kept] = tmp_path.glob("verify-*.json")
    assert json.loads(kept.read_text())["exact_rows"] == measured.exact_rows == DRAFT_MAX + 1

    def no_measuring(*args: object) -> VerifyProbe:
        raise AssertionError("measured again")

    monkeypatch.setattr(verify_probe, "_FINDINGS", {})  # a new process
    with monkeypatch.context() as patched:
        patched.setattr(verify_probe, "probe_verification", no_measuring)
        assert once(1) == measured
    once(2)
    assert len(list(tmp_path.glob("verify-*.json"))) == 2
    kept.write_text("{not json")
    monkeypatch.setattr(verify_probe, "_FINDINGS", {})
    assert once(1).exact_rows == DRAFT_MAX + 1
    assert json.loads(kept.read_text())["exact_rows"] == DRAFT_MAX + 1


def test_gemma_drafts_past_the_rows_it_verifies_bit_for_bit() -> None:
    # Gemma 3 270M's Q4_K weights are repacked (rows computed four at a time): the probe finds only calls
    # of up to three rows give one-token steps' logits, which is what the bit-for-bit guarantee covers.
    # Drafts still take the length that pays, as batched steps take the same four-row kernels, so the
    # output with its own answer as the prediction may leave that answer only where it was a near-tie.
    _, path = resolve_model("gemma-3-270m")
    with load_model(path) as gemma:
        # Lanes of 256 positions: the probe's far check stays short of the split attention of longer ones.
        eng = EngineClient(gemma, _config(n_threads=2, speculative="off", max_model_len=256))
        eng.start()
        try:
            assert eng.core.speculator.exact_rows == SAFE_ROWS
            verified: list[tuple[int, int]] = []
            observe = eng.core.speculator.observe

            def spy(seq: Sequence, drafted: int, accepted: int, drawn: int) -> None:
                verified.append((drafted, accepted))
                observe(seq, drafted, accepted, drawn)

            eng.core.speculator.observe = spy  # type: ignore[method-assign]
            ids = gemma.tokenize("<start_of_turn>user\nList the days of the week, one per line.<end_of_turn>\n"
                                 "<start_of_turn>model\n", add_special=True, parse_special=True)
            params = SamplingParams(max_tokens=40, temperature=0.0, logprobs=2)
            plain, _ = generate(eng, ids, params)
            answer = tuple(e.token_id for e in plain if e.finish is None)
            predicted, stream = generate(eng, ids, replace(params, prediction=answer))
        finally:
            eng.stop()
    assert max(accepted for _, accepted in verified) >= SAFE_ROWS  # more than a 3-row call could take
    assert stream.accepted == sum(accepted for _, accepted in verified)
    tokens = [e.token_id for e in predicted]
    same = next((i for i, (a, b) in enumerate(zip(tokens, answer, strict=False)) if a != b), len(answer))
    if same < len(answer):  # where the outputs part, the model's two best tokens were all but tied
        top = plain[same].top_logprobs
        assert top is not None
        (_, best), (_, second) = top
        assert best - second < 0.1, (same, top)


def test_tokens_the_grammar_forces_are_drafted_and_refused_ones_cut(model: Model) -> None:
    rigid = ("%llguidance {}\nstart: %json " + json.dumps({**PERSON, "x-guidance": {"whitespace_flexible": False}}))
    constraint = Grammars(guidance_tokenizer(model)).compile(rigid)

    def tokens(text: str) -> list[int]:
        return model.tokenize(text, add_special=False, parse_special=False)

    def sequence(prediction: list[int] | None) -> Sequence:
        """A sequence that has output one token, its prediction's first: the rest is its next draft."""
        predicted = None if prediction is None else (1, *prediction)
        seq = Sequence([1, 2, 3], SamplingParams(max_tokens=50, prediction=predicted), None, constraint)
        seq.output_ids = [1]
        seq.num_computed = seq.num_tokens - 1
        return seq

    speculator = Speculator("ngram", max_model_len=512, cost=CallCost.linear(0.05))
    for token in tokens("{"):
        constraint.consume(token)
    forced = constraint.forced()
    assert b"".join(model.token_bytes(t) for t in forced) == b'"name'
    assert speculator.draft(sequence(None), 1, 100) == forced  # nothing to look up: the grammar's own tokens
    for token in tokens('"name":"Bob","age":'):
        constraint.consume(token)
    assert constraint.forced() == []  # an integer: the digits are the model's choice
    valid, invalid = tokens("42}"), tokens("x}")
    assert speculator.draft(sequence(valid), 1, 100) == valid
    assert speculator.draft(sequence(invalid), 1, 100) == []  # cut at the first token the grammar refuses
    assert constraint.valid_prefix(valid) == len(valid)  # checking moved nothing
