"""Drafts without a model: prediction following and realigning, n-gram lookup, the speculator's limits, and
the scheduler recording a verified draft (tokens, KV positions, finishes, counts)."""

from __future__ import annotations

from typing import Any

from streamserve.engine.drafts import NgramDrafter, PredictionDrafter
from streamserve.engine.events import FinishReason
from streamserve.engine.lanes import LanePool
from streamserve.engine.sampling import SamplingParams
from streamserve.engine.scheduler import Scheduler
from streamserve.engine.sequence import Sequence, SequenceStatus
from streamserve.engine.speculation import BUSY, DRAFT_MAX, PRIORS, Speculator, best_length, expected_tokens
from streamserve.engine.verify_probe import CallCost, VerifyProbe
from streamserve.engine.work import Sampled

_DUMMY: Any = object()
EOG = 2
ANY = 10_000  # a prompt budget that does not limit anything


def test_a_prediction_is_followed_while_the_output_agrees() -> None:
    drafter = PredictionDrafter([10, 11, 12, 13, 14, 15])
    assert drafter.propose([], 3) == [10, 11, 12]
    assert drafter.propose([10], 3) == [11, 12, 13]
    assert drafter.propose([10, 11, 12, 13], 5) == [14, 15]
    assert drafter.propose([10, 11, 12, 13, 14, 15], 5) == []


def test_after_an_inserted_span_the_prediction_is_found_again_by_the_last_tokens() -> None:
    drafter = PredictionDrafter([1, 2, 3, 4, 5, 6, 7, 8])
    assert drafter.propose([1, 2], 2) == [3, 4]
    assert drafter.propose([1, 2, 99, 98], 2) == []  # lost: 98 is nowhere in the prediction
    assert drafter.propose([1, 2, 99, 98, 3, 4], 3) == [5, 6, 7]  # the model went back to the prediction


def test_after_a_deleted_span_drafting_resumes_past_it() -> None:
    drafter = PredictionDrafter([1, 2, 3, 4, 5, 6, 7, 8])
    assert drafter.propose([1, 2], 2) == [3, 4]
    assert drafter.propose([1, 2, 6], 2) == [7, 8]  # 3, 4, 5 skipped


def test_realigning_prefers_the_next_occurrence_over_an_earlier_one() -> None:
    # "a b" occurs at 0 and at 5; once past the first, a change then "a b" resumes at the second.
    prediction = [7, 8, 1, 2, 3, 7, 8, 4, 5]
    drafter = PredictionDrafter(prediction)
    assert drafter.propose([7, 8, 1], 1) == [2]
    assert drafter.propose([7, 8, 1, 9, 7, 8], 2) == [4, 5]


def test_ngram_lookup_drafts_what_followed_the_latest_earlier_occurrence() -> None:
    prompt = [5, 1, 2, 3, 9, 1, 2, 3, 4, 6]
    assert NgramDrafter(prompt).propose([0, 1, 2, 3], 3) == [4, 6, 0]  # the later "1 2 3": 4 6 (then output)
    assert NgramDrafter(prompt).propose([8, 8], 2) == []  # "x 8 8" and "8 8" never occurred before
    assert NgramDrafter(prompt).propose([4], 4) == []
    assert NgramDrafter(prompt).propose([0, 1, 2, 3], 0) == []


def test_ngram_lookup_follows_a_growing_output_past_its_first_room() -> None:
    drafter = NgramDrafter([107, 108])
    output: list[int] = []
    for i in range(200):  # the history outgrows its first array: the lookup still sees all of it
        output.append(i % 50)
        if i <= 50:
            assert drafter.propose(output, 2) == []  # no n-gram repeats yet (49 0 is new)
        else:
            assert drafter.propose(output, 2) == [(i + 1) % 50, (i + 2) % 50]


def _seq(params: SamplingParams, output: list[int] | None = None) -> Sequence:
    seq = Sequence(list(range(100, 110)), params, _DUMMY)
    seq.output_ids = list(output or [10])
    seq.num_computed = seq.num_tokens - 1
    return seq


def test_the_speculator_stays_within_max_tokens_context_and_never_drafts_an_end() -> None:
    spec = Speculator(max_model_len=30, is_eog=lambda t: t == EOG)
    prediction = (10, 11, 12, EOG, 13)
    assert spec.draft(_seq(SamplingParams(max_tokens=50, prediction=prediction)), 1, 100) == [11, 12]
    # max_tokens 3 with one token out: at most 1 draft (it and the token after it make 3).
    assert spec.draft(_seq(SamplingParams(max_tokens=3, prediction=prediction)), 1, 100) == [11]
    assert spec.draft(_seq(SamplingParams(max_tokens=2, prediction=prediction)), 1, 100) == []
    assert spec.draft(_seq(SamplingParams(max_tokens=50, prediction=(10, 11, 12, 13)), [10] * 19), 1, 100) == []
    stop = SamplingParams(max_tokens=50, prediction=prediction, stop_token_ids=frozenset({12}))
    assert spec.draft(_seq(stop), 1, 100) == [11]


def test_the_speculator_drafts_nothing_when_busy_off_or_deterministic() -> None:
    params = SamplingParams(max_tokens=50, prediction=(10, 11, 12))
    assert Speculator(max_model_len=100).draft(_seq(params), BUSY, 100) == []
    assert Speculator(max_model_len=100).draft(_seq(params), 1, 0) == []
    assert Speculator("ngram", deterministic=True, max_model_len=100).draft(_seq(params), 1, 100) == []
    no_prediction = SamplingParams(max_tokens=50)
    assert Speculator("off", max_model_len=100).draft(_seq(no_prediction, [100, 101]), 1, 100) == []
    ngram = Speculator("ngram", max_model_len=100, cost=CallCost.linear(0.1))  # prior 0.6 at cheap rows: 3 tokens
    assert ngram.draft(_seq(no_prediction, [100, 101]), 1, 100) == [102, 103, 104]


def test_the_best_length_weighs_acceptance_against_the_cost_of_a_row() -> None:
    assert expected_tokens(1.0, 4) == 5 and expected_tokens(0.5, 2) == 1.75
    assert best_length(0.99, CallCost.linear(0.1), 16) == 16  # nearly always right, cheap rows: draft all it may
    linear = CallCost.linear(0.4)
    assert best_length(0.9, linear, 16) < best_length(0.95, linear, 16) < best_length(0.99, linear, 16)
    assert best_length(0.3, CallCost.linear(0.4), 16) == 0  # mostly wrong: nothing pays
    assert best_length(0.9, CallCost.linear(2.0), 16) == 0  # a row costs two decodes: nothing pays
    for alpha in (0.5, 0.8, 0.95):
        k = best_length(alpha, CallCost.linear(0.3), 16)
        rate = expected_tokens(alpha, k) / (1 + 0.3 * k)
        assert all(expected_tokens(alpha, j) / (1 + 0.3 * j) <= rate for j in range(1, 17))


def test_a_measured_call_cost_is_joined_by_lines_and_continued_past_its_last_point() -> None:
    cost = CallCost(((1, 1.0), (3, 2.8), (9, 5.6), (17, 9.4)))  # SmolLM2 on 2 EPYC cores
    assert cost(1) == 1.0 and cost(3) == 2.8 and cost(17) == 9.4
    assert cost(2) == 1.9 and abs(cost(13) - 7.5) < 1e-9
    assert abs(cost(25) - 13.2) < 1e-9  # the last segment's slope
    assert CallCost.linear(0.5)(5) == 3.0


def test_an_expensive_short_call_leaves_drafts_off_or_long() -> None:
    # Up to 5 rows a call costs about what as many one-row calls do: a short draft never pays, and at high
    # acceptance the long one does, where a linear cost fitted at 17 rows would pick a short one.
    measured = CallCost(((1, 1.0), (3, 2.8), (9, 5.6), (17, 9.4)))
    assert best_length(0.8, measured, 16) == 0
    assert best_length(0.99, measured, 16) == 16
    assert 0 < best_length(0.8, CallCost.linear((9.4 - 1) / 16), 16) < 8


def test_acceptance_is_learned_per_sequence_from_drafts_and_from_drafts_not_taken() -> None:
    spec = Speculator("ngram", max_model_len=100, cost=CallCost.linear(0.4))
    seq = _seq(SamplingParams(max_tokens=50), [100, 101])  # 100, 101 occurred in the prompt: 102 follows
    prior = spec.acceptance(seq)
    assert prior == PRIORS["ngram"]
    for _ in range(5):
        spec.observe(seq, 4, 0, 7)  # every draft wrong from its first token
    assert spec.acceptance(seq) < 0.3
    assert spec.draft(seq, 1, 100) == []  # drafting does not pay any more...
    assert seq.shadow_guess == 102  # ...but the proposal is still checked against the model's token
    spec.observe(seq, 0, 0, 103)
    assert seq.draft_evidence[1] > 0.9 * 5  # a wrong guess is a miss
    evidence = seq.draft_evidence
    spec.observe(seq, 0, 0, 104)  # a step that proposed nothing (a prompt was read): the guess was used up
    assert seq.shadow_guess is None and seq.draft_evidence == evidence
    for _ in range(30):  # the model starts repeating the prompt: the guesses come true
        if spec.draft(seq, 1, 100):
            break
        spec.observe(seq, 0, 0, 102)
    assert spec.draft(seq, 1, 100)[:1] == [102]  # and drafting resumes
    for _ in range(10):
        spec.observe(seq, 4, 4, 0)
    assert spec.acceptance(seq) > 0.9
    spec.observe(seq, 0, 0, 5)
    assert spec.acceptance(seq) > 0.9  # nothing proposed this step (drafted): no evidence
    predicted = _seq(SamplingParams(max_tokens=50, prediction=(10, 11)))
    assert spec.acceptance(predicted) == PRIORS["prediction"]


def _running(params: SamplingParams) -> tuple[Scheduler, Sequence]:
    sched = Scheduler(LanePool(2, 1), max_num_batched_tokens=64, grid=1, max_model_len=100,
                      is_eog=lambda t: t == EOG, speculator=Speculator(max_model_len=100, is_eog=lambda t: t == EOG))
    seq = Sequence([100, 101, 102], params, _DUMMY)
    sched.add(seq)
    sched.admit()
    seq.num_computed = 3
    seq.output_ids = [10]
    return sched, seq


def test_a_verified_draft_emits_the_agreeing_prefix_and_the_token_after_it() -> None:
    sched, seq = _running(SamplingParams(max_tokens=50, prediction=(10, 11, 12, 13, 14)))
    (work,) = sched.schedule(0)
    assert (work.kind, work.tokens, work.start) == ("verify", [10, 11, 12, 13, 14], 3)
    # The model agreed with 11 and 12, then drew 20 where the draft said 13.
    sampled = [Sampled(seq, 11, accepted=True), Sampled(seq, 12, accepted=True), Sampled(seq, 20)]
    outputs, failed = sched.postprocess([work], sampled)
    assert not failed
    (output,) = outputs
    assert [e.token_id for e in output.events] == [11, 12, 20] and all(e.finish is None for e in output.events)
    assert (output.drafted, output.accepted) == (4, 2)
    assert seq.output_ids == [10, 11, 12, 20]
    assert seq.num_computed == 6 == seq.num_tokens - 1  # 10, 11 and 12 are in the lane; 20 is decoded next
    assert seq.draft_evidence == (2, 1)


def test_a_length_limit_inside_a_verified_draft_ends_there() -> None:
    sched, seq = _running(SamplingParams(max_tokens=3, prediction=(10, 11, 12, 13)))
    (work,) = sched.schedule(0)
    assert work.tokens == [10, 11]  # capped: the draft and the token after it reach max_tokens
    outputs, _ = sched.postprocess([work], [Sampled(seq, 11, accepted=True), Sampled(seq, 12)])
    assert [(e.token_id, e.finish) for e in outputs[0].events] == [(11, None), (12, FinishReason.LENGTH)]
    assert seq.status is SequenceStatus.FINISHED


def test_an_end_of_generation_drawn_after_a_draft_ends_the_sequence() -> None:
    sched, seq = _running(SamplingParams(max_tokens=50, prediction=(10, 11, 12)))
    (work,) = sched.schedule(0)
    outputs, _ = sched.postprocess([work], [Sampled(seq, 11, accepted=True), Sampled(seq, EOG)])
    assert [(e.token_id, e.finish) for e in outputs[0].events] == [(11, None), (EOG, FinishReason.EOG)]
    assert seq.output_ids == [10, 11] and seq.status is SequenceStatus.FINISHED


def test_without_a_prediction_or_ngram_mode_every_decode_work_is_one_token_as_before() -> None:
    sched, seq = _running(SamplingParams(max_tokens=50))
    (work,) = sched.schedule(0)
    assert (work.kind, work.tokens, work.start, work.draft) == ("decode", [10], 3, [])
    outputs, _ = sched.postprocess([work], [Sampled(seq, 11)])
    assert (outputs[0].drafted, outputs[0].accepted) == (0, 0) and seq.num_computed == 4


def test_nothing_is_drafted_while_a_prompt_is_read() -> None:
    sched, seq = _running(SamplingParams(max_tokens=50, prediction=(10, 11, 12)))
    reading = Sequence(list(range(200, 240)), SamplingParams(max_tokens=4), _DUMMY)
    sched.add(reading)
    sched.admit()
    works = sched.schedule(ANY)
    assert (works[0].seq, works[0].kind) == (seq, "decode")
    assert works[1:] and all(w.seq is reading for w in works[1:])
    assert {w.kind for w in works[1:]} <= {"grid", "tail"}


def test_calibration_sizes_drafts_by_cost_and_records_the_exact_rows() -> None:
    params = SamplingParams(max_tokens=80, prediction=tuple(range(10, 60)))
    spec = Speculator(max_model_len=100, cost=CallCost.linear(0.05))
    seq = _seq(params)
    seq.draft_evidence = (100.0, 0.0)  # always right: only the cost limits the draft
    spec.calibrate(VerifyProbe(exact_rows=3, cost=CallCost.linear(0.05)))
    assert spec.exact_rows == 3
    assert spec.draft(seq, 1, 100) == list(range(11, 11 + DRAFT_MAX))  # not capped at the exact rows
    spec.calibrate(VerifyProbe(exact_rows=3, cost=CallCost.linear(2.0)))  # a row dearer than a step: no length pays
    assert spec.draft(seq, 1, 100) == []


def test_auto_keeps_ngram_drafts_within_the_exact_rows_and_predictions_go_on() -> None:
    repeating = list(range(100, 110)) * 4  # n-grams that always have a continuation
    spec = Speculator("auto", max_model_len=200, cost=CallCost.linear(0.05))
    ngram = _seq(SamplingParams(max_tokens=80))
    ngram.prompt_ids, ngram.output_ids = repeating, [100, 101]
    ngram.draft_evidence = (100.0, 0.0)
    predicted = _seq(SamplingParams(max_tokens=80, prediction=tuple(range(10, 60))))
    predicted.draft_evidence = (100.0, 0.0)
    spec.calibrate(VerifyProbe(exact_rows=4, cost=CallCost.linear(0.05)))
    assert spec.ngram
    assert spec.draft(ngram, 1, 100) == [102, 103, 104]  # three drafts and the last token: four exact rows
    assert len(spec.draft(predicted, 1, 100)) == DRAFT_MAX  # a prediction is asked for: not capped
    for exact_rows in (1, 0):  # no call of two rows or more is exact: no n-gram drafts at all
        spec = Speculator("auto", max_model_len=200, cost=CallCost.linear(0.05))
        spec.calibrate(VerifyProbe(exact_rows=exact_rows, cost=CallCost.linear(0.05)))
        fresh = _seq(SamplingParams(max_tokens=80))
        fresh.prompt_ids, fresh.output_ids = repeating, [100, 101]
        assert not spec.ngram and spec.draft(fresh, 1, 100) == [] and fresh.drafter is None
    spec = Speculator("ngram", max_model_len=200, cost=CallCost.linear(0.05))
    spec.calibrate(VerifyProbe(exact_rows=0, cost=CallCost.linear(0.05)))
    ngram.drafter, ngram.output_ids = None, [100, 101]
    assert spec.ngram and len(spec.draft(ngram, 1, 100)) > 3  # ngram drafts whatever pays
    assert not Speculator("ngram", deterministic=True, max_model_len=200).ngram


def test_the_drafts_of_one_step_share_one_drafts_rows() -> None:
    # Logits are computed for every row of a verification: the step's drafts together stay within DRAFT_MAX,
    # so the rows a step computes stay within what the memory estimate counts (STEP_ROWS).
    params = SamplingParams(max_tokens=200, prediction=tuple(range(10, 10 + 2 * DRAFT_MAX)))
    spec = Speculator(max_model_len=300, cost=CallCost.linear(0.05))
    sched = Scheduler(LanePool(2, 1), max_num_batched_tokens=512, grid=1, max_model_len=300, speculator=spec)
    seqs = [Sequence([100 + i, 101, 102], params, _DUMMY) for i in range(2)]
    for seq in seqs:
        sched.add(seq)
    sched.admit()
    for seq in seqs:
        seq.num_computed, seq.output_ids, seq.draft_evidence = 3, [10], (100.0, 0.0)
    works = sched.schedule(0)
    assert [len(w.draft) for w in works] == [DRAFT_MAX, 0]
