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
from streamserve.engine.verify_probe import VerifyProbe
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
    drafter = NgramDrafter([5, 1, 2, 3, 9, 1, 2, 3, 4, 6])
    assert drafter.propose([0, 1, 2, 3], 3) == [4, 6, 0]  # the later "1 2 3" is followed by 4 6 (then output)
    assert drafter.propose([8, 8], 2) == []  # "x 8 8" and "8 8" never occurred before
    assert drafter.propose([4], 4) == []
    assert drafter.propose([0, 1, 2, 3], 0) == []


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
    ngram = Speculator("ngram", max_model_len=100, row_cost=0.1)  # prior 0.6 at cheap rows: 3 tokens
    assert ngram.draft(_seq(no_prediction, [100, 101]), 1, 100) == [102, 103, 104]


def test_the_best_length_weighs_acceptance_against_the_cost_of_a_row() -> None:
    assert expected_tokens(1.0, 4) == 5 and expected_tokens(0.5, 2) == 1.75
    assert best_length(0.99, 0.1, 16) == 16  # nearly always right, cheap rows: draft all it may
    assert best_length(0.9, 0.4, 16) < best_length(0.95, 0.4, 16) < best_length(0.99, 0.4, 16)
    assert best_length(0.3, 0.4, 16) == 0  # mostly wrong: nothing pays
    assert best_length(0.9, 2.0, 16) == 0  # a row costs two decodes: nothing pays
    for alpha in (0.5, 0.8, 0.95):
        k = best_length(alpha, 0.3, 16)
        rate = expected_tokens(alpha, k) / (1 + 0.3 * k)
        assert all(expected_tokens(alpha, j) / (1 + 0.3 * j) <= rate for j in range(1, 17))


def test_acceptance_is_learned_per_sequence_and_fades_back_to_the_prior() -> None:
    spec = Speculator("ngram", max_model_len=100, row_cost=0.4)
    seq = _seq(SamplingParams(max_tokens=50), [100, 101])
    prior = spec.acceptance(seq)
    assert prior == PRIORS["ngram"]
    for _ in range(5):
        spec.observe(seq, 4, 0)  # every draft wrong from its first token
    assert spec.acceptance(seq) < 0.3
    assert spec.draft(seq, 1, 100) == []  # drafting does not pay any more...
    for _ in range(300):
        spec.draft(seq, 1, 100)
        if seq.draft_evidence[1] < 0.5:
            break
    assert spec.draft(seq, 1, 100)  # ...until the evidence has faded and it is tried again
    for _ in range(10):
        spec.observe(seq, 4, 4)
    assert spec.acceptance(seq) > 0.9
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
    params = SamplingParams(max_tokens=50, prediction=tuple(range(10, 40)))
    spec = Speculator(max_model_len=100, row_cost=0.05)
    seq = _seq(params)
    seq.draft_evidence = (100.0, 0.0)  # always right: only the cost limits the draft
    spec.calibrate(VerifyProbe(exact_rows=3, row_cost=0.05))
    assert spec.exact_rows == 3
    assert spec.draft(seq, 1, 100) == list(range(11, 11 + DRAFT_MAX))  # not capped at the exact rows
    spec.calibrate(VerifyProbe(exact_rows=3, row_cost=2.0))  # a row dearer than a step: no length pays
    assert spec.draft(seq, 1, 100) == []


