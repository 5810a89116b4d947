"""Sampler on real logits: greedy is the argmax, a seed repeats its draw, logit bias and penalties apply."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from streamserve.llama import Batch, Context, Model, Sampler, gilfree


@pytest.fixture(scope="module")
def decoded(smollm2: Model) -> Iterator[tuple[Context, int]]:
    """A context whose batch row ``row`` holds the logits after a short prompt."""
    ctx = Context(smollm2, n_ctx_seq=128, n_seq_max=1, n_batch=32, n_threads=1)
    batch = Batch(32)
    ids = smollm2.tokenize("My favourite colour is", add_special=False, parse_special=False)
    row = -1
    for i, token in enumerate(ids):
        row = batch.add(token, i, 0, i == len(ids) - 1)
    ctx.decode(batch)
    yield ctx, row
    batch.close()
    ctx.close()


def _sampler(model: Model, **overrides: Any) -> Sampler:
    params: dict[str, Any] = dict(temperature=0.0, top_p=1.0, top_k=0, min_p=0.0, seed=1, presence_penalty=0.0,
                                  frequency_penalty=0.0, repetition_penalty=1.0, logit_bias=())
    params.update(overrides)
    return Sampler(model.n_vocab, **params)


def _draw(model: Model, decoded: tuple[Context, int], **overrides: Any) -> int:
    ctx, row = decoded
    sampler = _sampler(model, **overrides)
    try:
        return sampler.sample(ctx, row)
    finally:
        sampler.close()


def test_temperature_zero_is_argmax(smollm2: Model, decoded: tuple[Context, int]) -> None:
    ctx, row = decoded
    assert _draw(smollm2, decoded) == int(ctx.logits(row).argmax())


def test_same_seed_same_draws(smollm2: Model, decoded: tuple[Context, int]) -> None:
    draws = {seed: [_draw(smollm2, decoded, temperature=1.5, seed=seed) for _ in range(3)] for seed in range(8)}
    for seed, tokens in draws.items():
        assert len(set(tokens)) == 1, f"seed {seed} drew {tokens}"
    assert len({tokens[0] for tokens in draws.values()}) > 1, "eight seeds at temperature 1.5 all drew one token"


def test_top_k_one_is_greedy_at_any_temperature(smollm2: Model, decoded: tuple[Context, int]) -> None:
    greedy = _draw(smollm2, decoded)
    assert all(_draw(smollm2, decoded, temperature=2.0, top_k=1, seed=s) == greedy for s in range(5))


def test_logit_bias_forces_and_bans(smollm2: Model, decoded: tuple[Context, int]) -> None:
    greedy = _draw(smollm2, decoded)
    forced = smollm2.tokenize(" banana", add_special=False, parse_special=False)[0]
    assert _draw(smollm2, decoded, logit_bias=((forced, 100.0),)) == forced
    assert _draw(smollm2, decoded, logit_bias=((greedy, -100.0),)) != greedy


def test_penalties_build_and_sample(smollm2: Model, decoded: tuple[Context, int]) -> None:
    token = _draw(smollm2, decoded, presence_penalty=0.5, frequency_penalty=0.5, repetition_penalty=1.1)
    assert 0 <= token < smollm2.n_vocab


def test_close_is_idempotent(smollm2: Model) -> None:
    sampler = _sampler(smollm2)
    sampler.close()
    sampler.close()
    assert sampler.ptr is None


@pytest.mark.parametrize("overrides", [{}, {"temperature": 0.9, "seed": 7, "top_k": 40, "top_p": 0.9},
                                       {"temperature": 1.3, "seed": 3, "presence_penalty": 0.5,
                                        "logit_bias": ((13, 5.0),)}])
def test_sampling_saved_logits_draws_what_the_row_draws(smollm2: Model, decoded: tuple[Context, int],
                                                         overrides: dict[str, Any]) -> None:
    ctx, row = decoded
    saved = ctx.logits(row)
    from_row, from_saved = _sampler(smollm2, **overrides), _sampler(smollm2, **overrides)
    try:
        drawn = [from_row.sample(ctx, row) for _ in range(5)]
        assert [from_saved.sample_logits(saved) for _ in range(5)] == drawn  # same draws, same penalty state
    finally:
        from_row.close()
        from_saved.close()


@pytest.mark.parametrize("bias", [(), ((13, 5.0),), ((13, 5.0), (13, 4.0), (7, 100.0), (9, -1e30))])
def test_greedy_in_numpy_is_llama_cpps_greedy_chain(smollm2: Model, decoded: tuple[Context, int],
                                                    bias: tuple[tuple[int, float], ...]) -> None:
    ctx, row = decoded
    saved = ctx.logits(row)
    sampler = _sampler(smollm2, logit_bias=bias)
    try:
        chain = int(gilfree.sampler_sample(sampler.ptr, ctx.ptr, row))  # llama.cpp's own bias + greedy samplers
        assert sampler.sample_logits(saved) == chain
        assert np.array_equal(saved, ctx.logits(row))  # saved logits are not changed by a draw
        assert sampler.sample(ctx, row) == chain
    finally:
        sampler.close()
