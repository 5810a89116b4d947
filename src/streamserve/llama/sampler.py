"""Sampler: one llama.cpp sampler chain for one sequence."""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import llama_cpp.llama_cpp as lc

from streamserve.llama import gilfree
from streamserve.llama.context import Context


class Sampler:
    """A per-sequence chain: logit bias, penalties, top-k, top-p, min-p, temperature, then a draw.

    Temperature 0 is greedy. ``sample`` already accepts the token into the chain (penalties see it);
    never accept it again.
    """

    def __init__(
        self,
        n_vocab: int,
        *,
        temperature: float,
        top_p: float,
        top_k: int,
        min_p: float,
        seed: int,
        presence_penalty: float,
        frequency_penalty: float,
        repetition_penalty: float,
        logit_bias: Sequence[tuple[int, float]],
        penalty_last_n: int = 64,
    ) -> None:
        params = lc.llama_sampler_chain_default_params()
        params.no_perf = True
        self.ptr = lc.llama_sampler_chain_init(params)

        def add(sampler: object) -> None:
            lc.llama_sampler_chain_add(self.ptr, sampler)

        if logit_bias:
            biases = (lc.llama_logit_bias * len(logit_bias))(
                *(lc.llama_logit_bias(token, bias) for token, bias in logit_bias)
            )
            add(lc.llama_sampler_init_logit_bias(n_vocab, len(logit_bias), biases))
        if presence_penalty or frequency_penalty or repetition_penalty != 1.0:
            add(
                lc.llama_sampler_init_penalties(
                    n_vocab, penalty_last_n, repetition_penalty, frequency_penalty, presence_penalty
                )
            )
        if temperature <= 0.0:
            add(lc.llama_sampler_init_greedy())
            return
        if top_k > 0:
            add(lc.llama_sampler_init_top_k(top_k))
        if top_p < 1.0:
            add(lc.llama_sampler_init_top_p(top_p, 1))
        if min_p > 0.0:
            add(lc.llama_sampler_init_min_p(min_p, 1))
        add(lc.llama_sampler_init_temp(temperature))
        add(lc.llama_sampler_init_dist(ctypes.c_uint32(seed).value))

    def sample(self, context: Context, row: int) -> int:
        """Draw the next token from batch row ``row``'s logits, and accept it."""
        return int(gilfree.sampler_sample(self.ptr, context.ptr, row))

    def close(self) -> None:
        """Free the chain and every sampler in it."""
        if self.ptr:
            lc.llama_sampler_free(self.ptr)
            self.ptr = None
