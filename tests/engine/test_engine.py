"""EngineClient on the real SmolLM2 model, without HTTP: determinism, batching, abort, queue, cache, shutdown.

Comparisons of token ids (determinism, cache == no cache) run each sequence alone, since llama.cpp
logits differ slightly with the batch's composition. The engines use one thread: on a busy 2-core
machine llama.cpp's spinning worker threads otherwise slow down by an order of magnitude.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from streamserve.engine import (
    EngineClient,
    EngineConfig,
    EngineError,
    EngineStoppedError,
    FinishReason,
    QueueFullError,
    SamplingParams,
    SequenceStream,
    StreamBacklogError,
    TokenEvent,
)
from streamserve.engine.lanes import common_prefix_len
from streamserve.llama import Model

T = TypeVar("T")

TIMEOUT_S = 120.0
SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
GREEDY = SamplingParams(max_tokens=16, temperature=0.0)

EngineFactory = Callable[..., EngineClient]


def run(coro: Coroutine[Any, Any, T], timeout: float = TIMEOUT_S) -> T:
    """Run a coroutine on a fresh event loop; a hang fails the test instead of the suite."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def _config(**overrides: Any) -> EngineConfig:
    values: dict[str, Any] = dict(max_num_seqs=8, max_model_len=512, max_queue=8, n_threads=1,
                                  max_num_batched_tokens=256)
    values.update(overrides)
    return EngineConfig(**values)


@pytest.fixture(scope="module")
def engine(model: Model) -> Iterator[EngineClient]:
    """One 8-lane engine shared by the tests that do not depend on a clean prompt cache."""
    eng = EngineClient(model, _config())
    eng.start()
    yield eng
    eng.stop()


@pytest.fixture()
def make_engine(model: Model) -> Iterator[EngineFactory]:
    """Fresh engines (clean prompt cache, own limits), stopped at the end of the test."""
    engines: list[EngineClient] = []

    def make(**overrides: Any) -> EngineClient:
        eng = EngineClient(model, _config(**overrides))
        eng.start()
        engines.append(eng)
        return eng

    yield make
    for eng in engines:
        eng.stop()


def chat(model: Model, user: str, *, system: bool = False) -> list[int]:
    text = (SYSTEM if system else "") + f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    return model.tokenize(text, add_special=False, parse_special=True)


def next_turn(model: Model, user: str) -> list[int]:
    """The tokens that close an assistant turn and ask the next question."""
    return model.tokenize(f"<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n",
                          add_special=False, parse_special=True)


async def collect(stream: SequenceStream) -> list[TokenEvent]:
    return [event async for event in stream]


async def collect_noting(order: list[Any], name: Any, stream: SequenceStream) -> list[TokenEvent]:
    """Collect a stream's events, appending ``name`` to ``order`` as each arrives (to see interleaving)."""
    events = []
    async for event in stream:
        order.append(name)
        events.append(event)
    return events


async def generate(engine: EngineClient, prompt: list[int], params: SamplingParams) -> tuple[list[TokenEvent], int]:
    """Run one sequence to its end; return its events and its cached prompt tokens."""
    stream = engine.generate(prompt, params)
    events = await collect(stream)
    return events, stream.cached_tokens


def text_ids(events: list[TokenEvent]) -> list[int]:
    """The generated tokens that are text (an end-of-generation token is not)."""
    return [e.token_id for e in events if e.finish is not FinishReason.EOG]


def assert_well_formed(events: list[TokenEvent]) -> None:
    """Exactly one finish, on the last event."""
    assert events, "no events"
    assert events[-1].finish is not None
    assert all(e.finish is None for e in events[:-1])


# Determinism


def test_greedy_is_deterministic(engine: EngineClient, model: Model) -> None:
    prompt = chat(model, "Name three colors of the rainbow.")

    async def twice() -> tuple[list[TokenEvent], list[TokenEvent]]:
        first, _ = await generate(engine, prompt, GREEDY)
        second, _ = await generate(engine, prompt, GREEDY)
        return first, second

    first, second = run(twice())
    assert_well_formed(first)
    assert len(text_ids(first)) >= 3
    assert [e.token_id for e in first] == [e.token_id for e in second]
    assert first[-1].finish == second[-1].finish


def test_seeded_sampling_is_repeatable(engine: EngineClient, model: Model) -> None:
    prompt = chat(model, "Tell me a short story about a dragon.")

    def params(seed: int) -> SamplingParams:
        return SamplingParams(max_tokens=16, temperature=0.8, seed=seed)

    async def draws() -> tuple[list[int], list[int], list[list[int]]]:
        a, _ = await generate(engine, prompt, params(1234))
        b, _ = await generate(engine, prompt, params(1234))
        others = [text_ids((await generate(engine, prompt, params(seed)))[0]) for seed in (1, 2, 3)]
        return text_ids(a), text_ids(b), others

    a, b, others = run(draws())
    assert a == b
    assert any(other != a for other in others), "three other seeds reproduced seed 1234 exactly"


# Continuous batching


def test_concurrent_sequences_complete_and_interleave(engine: EngineClient, model: Model) -> None:
    topics = ["the sea", "a cat", "mountains", "the moon", "coffee", "trains", "autumn", "a library"]
    n_tokens = 12
    order: list[int] = []

    async def main() -> list[list[TokenEvent]]:
        params = SamplingParams(max_tokens=n_tokens, temperature=0.0, ignore_eos=True)
        # One submit: all eight arrive in the same step. (Arriving one by one, later prompts are read
        # a few tokens per step while earlier ones decode, by the prefill-stall budget's design.)
        streams = engine.submit([(chat(model, f"Write a poem about {t}."), params) for t in topics])
        return await asyncio.gather(*(collect_noting(order, i, s) for i, s in enumerate(streams)))

    results = run(main())
    for events in results:
        assert_well_formed(events)
        assert len(events) == n_tokens
        assert events[-1].finish is FinishReason.LENGTH
    firsts = [order.index(i) for i in range(len(topics))]
    lasts = [len(order) - 1 - order[::-1].index(i) for i in range(len(topics))]
    # Served together: every sequence had its first token before any sequence had its last one ...
    assert max(firsts) < min(lasts), order
    # ... and the arrival order switches sequences all the time (7 switches if run one after another).
    switches = sum(a != b for a, b in itertools.pairwise(order))
    assert switches >= 4 * len(topics), order
    stats = engine.stats()
    assert (stats.running, stats.waiting) == (0, 0)


def test_waiting_sequence_is_admitted_when_a_lane_frees_mid_batch(make_engine: EngineFactory, model: Model) -> None:
    """Continuous batching: a queued sequence starts as soon as one lane is free, while the other still runs."""
    eng = make_engine(max_num_seqs=2, max_queue=1)
    order: list[str] = []

    async def main() -> list[list[TokenEvent]]:
        def params(n: int) -> SamplingParams:
            return SamplingParams(max_tokens=n, temperature=0.0, ignore_eos=True)

        long = eng.generate(chat(model, "Count to one hundred."), params(40))
        short = eng.generate(chat(model, "Say hi."), params(3))
        queued = eng.generate(chat(model, "Say bye."), params(3))
        return await asyncio.gather(collect_noting(order, "long", long), collect_noting(order, "short", short),
                                    collect_noting(order, "queued", queued))

    long, short, queued = run(main())
    assert [len(long), len(short), len(queued)] == [40, 3, 3]
    last_long = len(order) - 1 - order[::-1].index("long")
    assert order.index("queued") > order.index("short")
    assert len(order) - 1 - order[::-1].index("queued") < last_long, order


# Abort and the queue


def test_abort_frees_the_lane(make_engine: EngineFactory, model: Model) -> None:
    eng = make_engine(max_num_seqs=1, max_queue=1)

    async def main() -> tuple[int, list[TokenEvent]]:
        long = eng.generate(chat(model, "Write a very long essay about history."),
                            SamplingParams(max_tokens=400, temperature=0.0, ignore_eos=True))
        received = 0
        async for _ in long:
            received += 1
            if received == 2:
                break
        long.close()
        after, _ = await generate(eng, chat(model, "Say hello."),
                                  SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True))
        return received, after

    received, after = run(main(), timeout=60)
    assert received == 2
    assert len(after) == 8 and after[-1].finish is FinishReason.LENGTH
    stats = eng.stats()
    assert (stats.running, stats.waiting, stats.lanes_free, stats.lanes_total) == (0, 0, 1, 1)
    assert dict(stats.aborted_total) == {"waiting": 0, "prefill": 0, "decode": 1}
    # The aborted sequence stopped at a step boundary; it did not run on towards its 400 tokens.
    assert stats.generation_tokens_total < 2 + 8 + 20


def test_abort_during_prefill_frees_the_lane(make_engine: EngineFactory, model: Model) -> None:
    """A prompt read 16 tokens a step is aborted while it is read: counted as such, its lane freed."""
    eng = make_engine(max_num_seqs=1, max_num_batched_tokens=16, prompt_grid=16)
    prompt = chat(model, "Summarise: " + "the lane is read in chunks, " * 60)

    async def main() -> list[TokenEvent]:
        stream = eng.generate(prompt, SamplingParams(max_tokens=4, temperature=0.0))
        deadline = time.monotonic() + 30
        while eng.stats().running == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        stream.close()
        return await collect(eng.generate(chat(model, "Hi."), SamplingParams(max_tokens=3, ignore_eos=True)))

    assert len(prompt) > 16 * 20
    assert len(run(main(), timeout=60)) == 3
    stats = eng.stats()
    assert dict(stats.aborted_total) == {"waiting": 0, "prefill": 1, "decode": 0}
    assert (stats.running, stats.waiting, stats.lanes_free) == (0, 0, 1)


def test_aborted_sequence_leaves_its_tokens_cached_at_the_right_positions(make_engine: EngineFactory,
                                                                        model: Model) -> None:
    """An aborted lane keeps what it computed: a request resuming from the tokens received reuses its
    prompt's whole grid chunks and continues exactly as a fresh engine does from the same tokens."""
    fresh_engine = make_engine(max_num_seqs=1)
    eng = make_engine(max_num_seqs=1)
    prompt = chat(model, "Write a very long essay about history, its wars, its kings and its peoples. " * 4)
    params = SamplingParams(max_tokens=10, temperature=0.0, ignore_eos=True)

    async def main() -> tuple[list[int], list[TokenEvent], int, list[TokenEvent]]:
        long = eng.generate(prompt, SamplingParams(max_tokens=400, temperature=0.0, ignore_eos=True))
        received = [(await long.__anext__()).token_id, (await long.__anext__()).token_id]
        long.close()
        resumed, cached = await generate(eng, prompt + received, params)
        fresh, _ = await generate(fresh_engine, prompt + received, params)
        return received, resumed, cached, fresh

    _, resumed, cached, fresh = run(main(), timeout=60)
    grid = eng.config.prompt_grid
    assert len(prompt) > grid
    assert cached == len(prompt) // grid * grid  # the tail and the decoded tokens are read again
    assert [e.token_id for e in resumed] == [e.token_id for e in fresh]


def test_abort_of_a_waiting_sequence_frees_its_queue_slot(make_engine: EngineFactory, model: Model) -> None:
    eng = make_engine(max_num_seqs=1, max_queue=1)

    async def main() -> list[TokenEvent]:
        prompt = chat(model, "Tell me a long story.")
        running = eng.generate(prompt, SamplingParams(max_tokens=60, temperature=0.0, ignore_eos=True))
        waiting = eng.generate(prompt, SamplingParams(max_tokens=4, temperature=0.0))
        with pytest.raises(QueueFullError):
            eng.generate(prompt, SamplingParams(max_tokens=4))
        await running.__anext__()
        waiting.close()
        await running.__anext__()  # a step boundary has passed: the abort is applied
        await running.__anext__()
        replacement = eng.generate(prompt, SamplingParams(max_tokens=3, temperature=0.0, ignore_eos=True))
        running.close()
        return await collect(replacement)

    events = run(main(), timeout=60)
    assert len(events) == 3 and events[-1].finish is FinishReason.LENGTH
    assert dict(eng.stats().aborted_total)["waiting"] == 1


def test_queue_full_raises(make_engine: EngineFactory, model: Model) -> None:
    eng = make_engine(max_num_seqs=1, max_queue=0)
    prompt = chat(model, "Hello!")
    params = SamplingParams(max_tokens=4, temperature=0.0, ignore_eos=True)

    async def main() -> list[TokenEvent]:
        with pytest.raises(ValueError, match="never fit"):  # two sequences never fit one lane: not a retry
            eng.submit([(prompt, params), (prompt, params)])
        first = eng.generate(prompt, params)
        with pytest.raises(QueueFullError):
            eng.generate(prompt, params)
        events = await collect(first)
        # Its lane is free again as soon as the last event is out.
        return events + await collect(eng.generate(prompt, params))

    events = run(main(), timeout=60)
    assert len(events) == 8
    assert eng.stats().prompt_tokens_total == 2 * len(prompt)  # the refused submissions queued nothing


def test_an_aborted_sequence_stops_counting_for_admission_at_once(make_engine: EngineFactory, model: Model) -> None:
    """A stream ended by the streaming layer (a stop string) aborts its sequence; the next request,
    sent before the engine's next step boundary, is admitted rather than refused (one lane, no queue)."""
    eng = make_engine(max_num_seqs=1, max_queue=0)
    prompt = chat(model, "Write a long story about a dragon.")
    params = SamplingParams(max_tokens=200, temperature=0.0, ignore_eos=True)

    async def main() -> list[int]:
        counts = []
        for _ in range(5):
            stream = eng.generate(prompt, params)
            await stream.__anext__()
            stream.close()  # what the stop-string path does, then the client gets [DONE] and sends again
            counts.append(len(await collect(eng.generate(prompt, SamplingParams(max_tokens=2, temperature=0.0,
                                                                              ignore_eos=True)))))
        return counts

    assert run(main()) == [2] * 5
    stats = eng.stats()
    assert (stats.running, stats.waiting) == (0, 0)


def test_submit_validates_prompts(engine: EngineClient) -> None:
    async def main() -> None:
        before = engine.stats()
        with pytest.raises(ValueError, match="at least one token"):
            engine.generate([], GREEDY)
        with pytest.raises(ValueError, match="context"):
            engine.generate([1] * 500, SamplingParams(max_tokens=13))
        with pytest.raises(ValueError, match="vocabulary"):
            engine.generate([1, engine.model.n_vocab], GREEDY)
        with pytest.raises(ValueError, match="vocabulary"):
            engine.generate([-1], GREEDY)
        with pytest.raises(ValueError):  # all or none: the valid first sequence is not queued either
            engine.submit([([1, 2, 3], GREEDY), ([], GREEDY)])
        await asyncio.sleep(0.1)
        after = engine.stats()
        assert after.prompt_tokens_total == before.prompt_tokens_total
        assert (after.running, after.waiting) == (0, 0)

    run(main())


def test_prompt_plus_max_tokens_may_fill_the_context(make_engine: EngineFactory, model: Model) -> None:
    """Every lane can hold a full ``max_model_len`` sequence at the same time."""
    eng = make_engine(max_num_seqs=2, max_model_len=128, max_num_batched_tokens=128)
    text = model.tokenize("The quick brown fox jumps over the lazy dog. " * 20, add_special=False, parse_special=False)
    prompts = [text[:108], text[1:109]]
    params = SamplingParams(max_tokens=20, temperature=0.0, ignore_eos=True)

    async def main() -> list[list[TokenEvent]]:
        streams = [eng.generate(p, params) for p in prompts]
        return await asyncio.gather(*(collect(s) for s in streams))

    for events in run(main()):
        assert len(events) == 20 and events[-1].finish is FinishReason.LENGTH


# Fair prefill


def test_short_prompt_is_read_before_a_long_one_in_flight_finishes(make_engine: EngineFactory, model: Model) -> None:
    """A short prompt arriving while a long one is read gets its first token long before the long one:
    shortest-first prompt shares, and steps bounded in time even though no stream decodes."""
    eng = make_engine(max_num_seqs=4, max_model_len=2048, max_num_batched_tokens=512, prefill_step_time=0.05)
    text = model.tokenize("The quick brown fox jumps over the lazy dog. " * 120, add_special=False,
                          parse_special=False)[:1200]
    order: list[str] = []

    async def main() -> tuple[list[TokenEvent], list[TokenEvent]]:
        long = eng.generate(text, SamplingParams(max_tokens=2, temperature=0.0, ignore_eos=True))
        while not any(s.num_computed for s in list(eng.core.scheduler.running)):  # its first chunk is read
            await asyncio.sleep(0.005)
        short = eng.generate(chat(model, "Say hi."), SamplingParams(max_tokens=3, temperature=0.0, ignore_eos=True))
        return await asyncio.gather(collect_noting(order, "long", long), collect_noting(order, "short", short))

    long_events, short_events = run(main())
    assert (len(long_events), len(short_events)) == (2, 3)
    assert order.index("short") < order.index("long"), order
    assert eng.stats().prompt_tokens_total == len(text) + len(chat(model, "Say hi."))


# Prompt cache


def test_prompt_cache_reuses_the_previous_turn_and_changes_nothing(make_engine: EngineFactory, model: Model) -> None:
    """A second turn reuses the first turn's lane, and generates exactly what a fresh engine generates.

    Only the whole grid chunks of the first prompt are reused (its tail and the generated tokens were
    computed in other batch shapes than a fresh read uses); then tokens and logprobs must match bit
    for bit. Wrong positions, a stale or missing KV entry, or an off-by-one in the kept prefix would
    all show up here, as would a prefix cut off the grid.
    """
    cached_engine = make_engine(max_num_seqs=1)
    first_prompt = chat(model, "What is the capital of France? " * 8, system=True)
    params = SamplingParams(max_tokens=16, temperature=0.0, logprobs=1)

    async def first_and_second() -> tuple[list[TokenEvent], list[int], list[TokenEvent], int]:
        first, _ = await generate(cached_engine, first_prompt, params)
        second_prompt = first_prompt + text_ids(first) + next_turn(model, "And what is the capital of Spain?")
        second, cached = await generate(cached_engine, second_prompt, params)
        return first, second_prompt, second, cached

    _, second_prompt, with_cache, cached = run(first_and_second())
    grid = cached_engine.config.prompt_grid
    assert len(first_prompt) > grid
    assert cached == len(first_prompt) // grid * grid > 0
    stats = cached_engine.stats()
    assert stats.cached_prompt_tokens_total == cached
    assert stats.prompt_tokens_total == len(first_prompt) + len(second_prompt)

    fresh_engine = make_engine(max_num_seqs=1)
    without_cache, fresh_cached = run(generate(fresh_engine, second_prompt, params))
    assert fresh_cached == 0
    assert [e.token_id for e in with_cache] == [e.token_id for e in without_cache]
    assert [e.logprob for e in with_cache] == [e.logprob for e in without_cache]


@pytest.mark.parametrize("params", [SamplingParams(max_tokens=8, temperature=0.0, logprobs=2),
                                    SamplingParams(max_tokens=8, temperature=0.9, seed=11, logprobs=2)],
                         ids=["greedy", "seeded"])
def test_prompt_cache_full_hit_reads_nothing_and_draws_what_a_fresh_read_draws(make_engine: EngineFactory,
                                                                              model: Model,
                                                                              params: SamplingParams) -> None:
    """The same prompt again reuses all of it, its tail too, and draws its first token from the saved logits.

    Tokens and logprobs equal the first request's bit for bit: the saved logits are the ones the first
    read computed, and drawing from them is the same draw as from the batch row.
    """
    eng = make_engine(max_num_seqs=1)
    prompt = chat(model, "Give me one word.")
    assert len(prompt) % eng.config.prompt_grid  # a tail, which only a whole-prompt hit reuses

    async def main() -> tuple[tuple[list[TokenEvent], int], tuple[list[TokenEvent], int]]:
        return await generate(eng, prompt, params), await generate(eng, prompt, params)

    (first, first_cached), (second, second_cached) = run(main())
    assert (first_cached, second_cached) == (0, len(prompt))
    assert [(e.token_id, e.logprob, e.top_logprobs) for e in first] == [
        (e.token_id, e.logprob, e.top_logprobs) for e in second]
    assert eng.stats().cached_prompt_tokens_total == len(prompt)


def test_longest_cached_prefix_lane_is_chosen(make_engine: EngineFactory, model: Model) -> None:
    eng = make_engine(max_num_seqs=3)
    prompts = [chat(model, q * 16) for q in ("What is two plus two? ", "Name a fruit. ", "Name an animal. ")]

    async def main() -> list[tuple[list[TokenEvent], int]]:
        streams = [eng.generate(p, GREEDY) for p in prompts]  # all three lanes in use at once
        firsts = [(await collect(s), s.cached_tokens) for s in streams]
        # Extend the second conversation: its lane, not the others, holds the longest prefix.
        second = prompts[1] + text_ids(firsts[1][0]) + next_turn(model, "Another one.")
        return [*firsts, await generate(eng, second, GREEDY)]

    *_, (_, cached) = run(main())
    # Its whole grid chunks: the tail and the generated tokens are read again (docs/determinism.md).
    grid = eng.config.prompt_grid
    assert len(prompts[1]) > grid
    assert cached == len(prompts[1]) // grid * grid


def test_interleaved_conversations_keep_their_cache(make_engine: EngineFactory, model: Model) -> None:
    """Conversation B's first turn must not evict conversation A's history while empty lanes are free.

    Both prompts start with the same system prompt, so the lane holding A shares the longest prefix
    with B; taking it keeps the system prompt for B but discards all of A's turn, and A's next turn
    recomputes it, although three of the four lanes were never used.
    """
    eng = make_engine(max_num_seqs=4)
    a1 = chat(model, "What is the capital of France? Tell me about its history and its rivers, please. " * 3,
              system=True)
    b1 = chat(model, "List three fruits.", system=True)

    async def main() -> tuple[list[TokenEvent], int]:
        a_out, _ = await generate(eng, a1, GREEDY)
        await generate(eng, b1, GREEDY)
        a2 = a1 + text_ids(a_out) + next_turn(model, "And of Spain?")
        _, cached = await generate(eng, a2, GREEDY)
        return a_out, cached

    _, cached = run(main())
    grid = eng.config.prompt_grid
    a_history = len(a1) // grid * grid  # A's whole grid chunks, all that a lane reuses
    assert a_history > common_prefix_len(a1, b1) // grid * grid  # more than the prefix B shares
    assert cached >= a_history, (
        f"A's second turn reused {cached} tokens (the system prompt and user header B shares), "
        f"not A's {a_history}-token history: B's first turn took A's lane while 3 lanes were empty"
    )


def test_shared_prefix_is_copied_from_another_lane_and_changes_nothing(make_engine: EngineFactory,
                                                                         model: Model) -> None:
    """A new conversation sharing A's system prompt copies that prefix from A's lane into an empty one.

    A's history stays cached in its own lane; B reuses the shared prefix's whole grid chunks without
    reading them again, and generates exactly what a fresh engine generates.
    """
    eng = make_engine(max_num_seqs=3)
    system = ("<|im_start|>system\n" + "You are a careful assistant. Answer briefly, in plain words, and never "
              "invent facts you are unsure about; say so instead. " * 3 + "<|im_end|>\n")
    a1 = model.tokenize(system + "<|im_start|>user\n" + "Tell me a story about a dragon. " * 12 + "<|im_end|>\n"
                        "<|im_start|>assistant\n", add_special=False, parse_special=True)
    b1 = model.tokenize(system + "<|im_start|>user\nName a fruit.<|im_end|>\n<|im_start|>assistant\n",
                        add_special=False, parse_special=True)
    shared = next(i for i, (x, y) in enumerate(zip(a1, b1, strict=False)) if x != y)
    grid = eng.config.prompt_grid
    assert shared >= grid

    async def main() -> tuple[list[TokenEvent], int, list[int]]:
        await generate(eng, a1, SamplingParams(max_tokens=48, temperature=0.0))
        a_lane_before = list(eng.core.scheduler.lanes.contents)
        b_out, cached = await generate(eng, b1, GREEDY)
        return b_out, cached, [len(c) for c in a_lane_before]

    b_out, cached, lanes_before = run(main())
    assert cached == shared // grid * grid
    assert max(len(c) for c in eng.core.scheduler.lanes.contents) >= max(lanes_before)  # A's history was not evicted
    fresh = make_engine(max_num_seqs=1)
    fresh_out, fresh_cached = run(generate(fresh, b1, GREEDY))
    assert fresh_cached == 0
    assert [e.token_id for e in b_out] == [e.token_id for e in fresh_out]


# Limits, logprobs, stop tokens


@pytest.mark.parametrize("max_tokens", [1, 5])
def test_max_tokens_finishes_with_length_exactly(engine: EngineClient, model: Model, max_tokens: int) -> None:
    prompt = chat(model, "Write a long story about a knight.")
    events, _ = run(generate(engine, prompt, SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)))
    assert len(events) == max_tokens
    assert_well_formed(events)
    assert events[-1].finish is FinishReason.LENGTH


def test_max_tokens_caps_a_natural_generation(engine: EngineClient, model: Model) -> None:
    events, _ = run(generate(engine, chat(model, "Write a long story about a knight."),
                             SamplingParams(max_tokens=7, temperature=0.0)))
    assert_well_formed(events)
    assert len(events) <= 7
    if len(events) == 7:
        assert events[-1].finish is FinishReason.LENGTH


def test_logprobs_greedy(engine: EngineClient, model: Model) -> None:
    params = SamplingParams(max_tokens=8, temperature=0.0, logprobs=5, ignore_eos=True)
    events, _ = run(generate(engine, chat(model, "Name a planet."), params))
    assert len(events) == 8
    for event in events:
        assert event.logprob is not None and event.top_logprobs is not None
        assert event.logprob <= 0.0
        top = event.top_logprobs
        assert len(top) == 5 and len({t for t, _ in top}) == 5
        values = [lp for _, lp in top]
        assert values == sorted(values, reverse=True)
        assert all(lp <= 0.0 for lp in values)
        assert sum(2.718281828459045**lp for lp in values) <= 1.0 + 1e-4
        # Greedy: the sampled token is the most likely one.
        assert top[0][0] == event.token_id
        assert event.logprob == pytest.approx(top[0][1], abs=1e-5)


def test_logprobs_sampled_token_matches_its_top_entry(engine: EngineClient, model: Model) -> None:
    params = SamplingParams(max_tokens=12, temperature=1.0, seed=7, logprobs=20, ignore_eos=True)
    events, _ = run(generate(engine, chat(model, "Invent a name for a cat."), params))
    found = 0
    for event in events:
        assert event.logprob is not None and event.top_logprobs is not None
        assert event.logprob <= 0.0
        assert event.logprob <= event.top_logprobs[0][1] + 1e-6
        top = dict(event.top_logprobs)
        if event.token_id in top:
            found += 1
            assert event.logprob == pytest.approx(top[event.token_id], abs=1e-5)
    assert found >= len(events) // 2


def test_logprobs_off_or_zero_alternatives(engine: EngineClient, model: Model) -> None:
    prompt = chat(model, "Name a planet.")
    plain, _ = run(generate(engine, prompt, SamplingParams(max_tokens=3, temperature=0.0, ignore_eos=True)))
    zero, _ = run(generate(engine, prompt, SamplingParams(max_tokens=3, temperature=0.0, logprobs=0,
                                                          ignore_eos=True)))
    assert all(e.logprob is None and e.top_logprobs is None for e in plain)
    assert all(e.logprob is not None and e.logprob <= 0.0 and e.top_logprobs == () for e in zero)


def test_stop_token_ids_end_the_sequence_with_eog(engine: EngineClient, model: Model) -> None:
    prompt = chat(model, "Write a poem about the sea.")
    free, _ = run(generate(engine, prompt, SamplingParams(max_tokens=16, temperature=0.0, ignore_eos=True)))
    tokens = [e.token_id for e in free]
    k = next(i for i in range(2, len(tokens)) if tokens[i] not in tokens[:i])
    params = SamplingParams(max_tokens=16, temperature=0.0, ignore_eos=True, stop_token_ids=frozenset({tokens[k]}))
    stopped, _ = run(generate(engine, prompt, params))
    assert [e.token_id for e in stopped] == tokens[: k + 1]
    assert stopped[-1].finish is FinishReason.EOG
    assert_well_formed(stopped)


def test_end_of_turn_token_finishes_with_eog(engine: EngineClient, model: Model) -> None:
    events, _ = run(generate(engine, chat(model, "Name three colors of the rainbow."),
                             SamplingParams(max_tokens=32, temperature=0.0)))
    assert_well_formed(events)
    assert events[-1].finish is FinishReason.EOG
    assert model.is_eog(events[-1].token_id)
    assert not any(model.is_eog(e.token_id) for e in events[:-1])


# Stats and shutdown


def test_stats_counters_grow(engine: EngineClient, model: Model) -> None:
    prompt = chat(model, "Describe a sunrise in detail.")
    params = SamplingParams(max_tokens=6, temperature=0.0, ignore_eos=True)

    async def main() -> tuple[int, int]:
        stream = engine.generate(prompt, params)
        await stream.__anext__()
        running = engine.stats().running
        await collect(stream)
        return running, stream.cached_tokens

    before = engine.stats()
    running_during, cached = run(main())
    after = engine.stats()
    assert running_during == 1
    assert after.prompt_tokens_total == before.prompt_tokens_total + len(prompt)
    assert after.cached_prompt_tokens_total == before.cached_prompt_tokens_total + cached
    assert after.generation_tokens_total == before.generation_tokens_total + 6
    assert (after.running, after.waiting) == (0, 0)
    assert after.kv_capacity_tokens == 512 * 8
    assert len(prompt) + 5 <= after.kv_used_tokens <= after.kv_capacity_tokens


def test_shutdown_fails_open_sequences_and_nothing_hangs(make_engine: EngineFactory, model: Model) -> None:
    eng = make_engine(max_num_seqs=1, max_queue=2)
    params = SamplingParams(max_tokens=300, temperature=0.0, ignore_eos=True)

    async def outcome(stream: SequenceStream) -> tuple[int, BaseException | None]:
        count = 0
        try:
            async for _ in stream:
                count += 1
        except Exception as exc:
            return count, exc
        return count, None

    async def main() -> tuple[float, list[tuple[int, BaseException | None]]]:
        streams = [eng.generate(chat(model, f"Write a long essay number {i}."), params) for i in range(3)]
        await streams[0].__anext__()
        start = time.monotonic()
        await asyncio.to_thread(eng.shutdown)
        elapsed = time.monotonic() - start
        results = await asyncio.gather(*(outcome(s) for s in streams))
        with pytest.raises(EngineStoppedError):
            eng.generate(chat(model, "Too late."), params)
        return elapsed, results

    elapsed, results = run(main(), timeout=60)
    assert elapsed < 10, "shutdown waited for its join timeout: the engine thread did not stop"
    for count, error in results:
        assert isinstance(error, EngineStoppedError), error
        assert count < 300
    start = time.monotonic()
    eng.shutdown()  # idempotent
    assert time.monotonic() - start < 1


def test_shutdown_of_an_idle_engine_is_quick(make_engine: EngineFactory) -> None:
    eng = make_engine(max_num_seqs=1)
    start = time.monotonic()
    eng.shutdown()
    assert time.monotonic() - start < 5


# Readers that fall behind


def test_a_reader_max_backlog_steps_behind_is_aborted_after_its_queued_events(make_engine: EngineFactory,
                                                                                model: Model) -> None:
    engine = make_engine(max_num_seqs=1, max_backlog=4)
    prompt = chat(model, "Count from one to one hundred.")
    params = SamplingParams(max_tokens=200, temperature=0.0, ignore_eos=True)

    async def scenario() -> tuple[list[TokenEvent], BaseException | None]:
        stream = engine.generate(prompt, params)
        while stream.queue.qsize() < 4:  # nobody reads: the queue fills
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        events: list[TokenEvent] = []
        try:
            async for event in stream:
                events.append(event)
        except EngineError as exc:
            return events, exc
        return events, None

    events, error = run(scenario())
    assert isinstance(error, StreamBacklogError)
    assert 4 <= len(events) < 200 and all(e.finish is None for e in events)
    # The lane is free again: the next sequence runs to its end.
    followup, _ = run(generate(engine, prompt, SamplingParams(max_tokens=3, temperature=0.0)))
    assert_well_formed(followup)
